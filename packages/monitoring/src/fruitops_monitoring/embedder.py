"""What the model makes of a batch: class, confidence, entropy, margin and its embedding.

The embedding is the input of the network's last linear layer (the penultimate layer). The
logged model is a torch.export program whose module keeps no submodules to hook, so an fx
interpreter runs its graph and keeps the value flowing into the last linear; a plain
``nn.Module`` gets a forward hook on its last ``nn.Linear`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import fx, nn

_LINEAR_OPS = {torch.ops.aten.linear.default: 0, torch.ops.aten.addmm.default: 1}


@dataclass(frozen=True)
class ModelOutputs:
    predicted_class: list[str]
    confidence: np.ndarray
    entropy: np.ndarray
    margin: np.ndarray  # top-1 minus top-2 probability
    embeddings: np.ndarray  # N × D


class _Capture(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, node: fx.Node):
        super().__init__(module)
        self.node = node
        self.value: torch.Tensor | None = None

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n is self.node:
            self.value = result
        return result


class Embedder:
    """Runs a loaded model (``module``, ``classes``, ``image_size``) on uint8 NHWC batches."""

    def __init__(self, model: Any):
        self.model = model
        self.image_size = int(model.image_size)
        self.classes = list(model.classes)
        module = model.module
        self._graph_node: fx.Node | None = None
        self._head: nn.Linear | None = None
        if isinstance(module, fx.GraphModule):
            linears = [
                n for n in module.graph.nodes if n.op == "call_function" and n.target in _LINEAR_OPS
            ]
            if not linears:
                raise ValueError("the model has no final linear layer to read an embedding from")
            last = linears[-1]
            self._graph_node = last.args[_LINEAR_OPS[last.target]]
        else:
            heads = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not heads:
                raise ValueError("the model has no final linear layer to read an embedding from")
            self._head = heads[-1]

    @torch.no_grad()
    def __call__(self, pixels: np.ndarray) -> ModelOutputs:
        x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
        if self._graph_node is not None:
            capture = _Capture(self.model.module, self._graph_node)
            logits = capture.run(x)
            logits = logits[0] if isinstance(logits, (tuple, list)) else logits
            embedding = capture.value
        else:  # a hook for this call only: the caller's module is left as it was
            seen: list[torch.Tensor] = []
            assert self._head is not None
            hook = self._head.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
            try:
                logits = self.model.module(x)
            finally:
                hook.remove()
            embedding = seen[-1]
        probs = torch.softmax(logits.float(), dim=1)
        top = probs.topk(min(2, probs.shape[1]), dim=1).values
        margin = top[:, 0] - (top[:, 1] if top.shape[1] > 1 else 0)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(1)
        return ModelOutputs(
            predicted_class=[self.classes[i] for i in probs.argmax(1).tolist()],
            confidence=top[:, 0].numpy().astype(np.float64),
            entropy=entropy.numpy().astype(np.float64),
            margin=margin.numpy().astype(np.float64),
            embeddings=embedding.flatten(1).float().numpy().astype(np.float64),
        )
