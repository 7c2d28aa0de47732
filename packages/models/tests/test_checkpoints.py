"""The checkpoint format: a retried task must read what the killed one wrote."""

import torch

from fruitops_models.checkpoints import TrainState, torch_state_bytes, torch_state_load

# the keys of every checkpoint written so far, in order: renaming a TrainState field breaks resume
KEYS = [
    "epoch",
    "model",
    "optimizer",
    "scheduler",
    "generator",
    "torch_rng",
    "best_state",
    "best_f1",
    "stale",
    "best_epoch",
    "history",
    "ema",  # added later: checkpoints written before it load with ema=None
]


class BytesCheckpointer:
    def __init__(self):
        self.data: bytes | None = None

    def load(self):
        return None if self.data is None else torch_state_load(self.data)

    def save(self, state):
        self.data = torch_state_bytes(state)


def test_train_state_round_trips_as_the_plain_dict_of_its_keys():
    store = BytesCheckpointer()
    assert TrainState.load(store) is None
    state = TrainState(
        epoch=3,
        model={"w": torch.ones(2)},
        optimizer={"state": {}, "param_groups": []},
        scheduler={"last_epoch": 7},
        generator=torch.Generator().get_state(),
        torch_rng=torch.get_rng_state(),
        best_state=None,
        best_f1=0.5,
        stale=1,
        best_epoch=2,
        history=[{"train_loss": 1.0}],
    )
    state.save(store)
    assert list(torch_state_load(store.data)) == KEYS
    loaded = TrainState.load(store)
    assert loaded.epoch == 3 and loaded.history == [{"train_loss": 1.0}]
    assert torch.equal(loaded.model["w"], torch.ones(2))
    assert torch.equal(loaded.torch_rng, state.torch_rng)


def test_a_checkpoint_from_before_the_moving_average_still_loads():
    store = BytesCheckpointer()
    old = {
        "epoch": 1, "model": {}, "optimizer": {}, "scheduler": {},
        "generator": torch.Generator().get_state(), "torch_rng": torch.get_rng_state(),
        "best_state": None, "best_f1": 0.1, "stale": 0, "best_epoch": 1, "history": [],
    }  # fmt: skip
    store.save(old)
    loaded = TrainState.load(store)
    assert loaded.epoch == 1 and loaded.ema is None
