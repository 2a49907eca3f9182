"""Recurrent cells written from the seed text's equations, and multi-layer RNN / LSTM / GRU built from them.

Notation: x_t input (B, I), h_t hidden state (B, H), σ the logistic, ⊙ the element-wise product. Each cell
keeps its input weights W (``weight_ih``, (G·H, I)), recurrent weights U (``weight_hh``, (G·H, H)) and one
bias b (``bias``, (G·H,)), the G gate blocks stacked in torch's order so that weights copy over as they are.

* :class:`RNNCell` (G = 1): h_t = tanh(U h_{t−1} + W x_t + b), output y_t = V h_t (V only with
  ``output_size``; ``nonlinearity="relu"`` replaces tanh).
* :class:`LSTMCell` (G = 4, blocks i, f, c̃, o):
  f_t = σ(W_f x_t + U_f h_{t−1} + b_f), i_t = σ(W_i x_t + U_i h_{t−1} + b_i),
  o_t = σ(W_o x_t + U_o h_{t−1} + b_o), c̃_t = tanh(W_c x_t + U_c h_{t−1} + b_c),
  c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t, h_t = o_t ⊙ tanh(c_t).
* :class:`GRUCell` (G = 3, blocks r, z, h̃): z_t = σ(W_z x_t + U_z h_{t−1} + b_z),
  r_t = σ(W_r x_t + U_r h_{t−1} + b_r), h̃_t = tanh(W_h x_t + U_h (r_t ⊙ h_{t−1}) + b_h),
  h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ h̃_t.

How the GRU maps to torch's ``nn.GRU``. The update gate: the seed writes h_t = z ⊙ h_{t−1} + (1 − z) ⊙ h̃,
which is torch's convention too (and Cho et al., 2014's), so z needs no change. Texts that write
h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h̃ (e.g. Chung et al., 2014) use z' = 1 − z; since 1 − σ(a) = σ(−a), such a
model becomes ours by negating the update-gate rows of W, U and b. The reset gate: the seed (like Cho et al.)
applies r *before* the recurrent matmul, U_h (r ⊙ h_{t−1}); torch (like cuDNN) applies it *after*, to
r ⊙ (U_h h_{t−1} + b_hn), which needs a bias of its own (``bias_hn``). The two are different functions (equal
only where r = 1). ``GRUCell(reset_after=False)`` (the default) is the seed's; ``reset_after=True`` is torch's,
and is what :meth:`GRUCell.from_torch` / :meth:`GRU.from_torch` build.

Biases. torch keeps two bias vectors (b_ih and b_hh) of which only the sum matters; these cells keep the
seed's single b = b_ih + b_hh (plus ``bias_hn`` in a reset-after GRU). So a layer here has 4H (LSTM), H (RNN) or
2H/3H (GRU after/before) fewer parameters than torch's, and computes the same function.

The multi-step layers :class:`RNN`, :class:`LSTM`, :class:`GRU` take input (T, B, I), or (B, T, I) with
``batch_first=True``, and return (output, final state) as torch's do: output is the top layer's h_t at every
step, (T, B, H); the state is h_n (L, B, H), or (h_n, c_n) for the LSTM. Each layer projects the whole
sequence through W at once, then steps through time. Bidirectional layers are not provided.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aicompute.checks import positive_int, probability
from aicompute.errors import AicomputeError

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]

State = Tensor | tuple[Tensor, Tensor]


class _Cell(nn.Module):
    """Shared parameters (W, U, b of G gate blocks), initialization and weight copying of the three cells."""

    num_gates: ClassVar[int]
    torch_class: ClassVar[type[nn.Module]]

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__()
        positive_int("input_size", input_size)
        positive_int("hidden_size", hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        gh = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gh, input_size))  # W, gate blocks stacked
        self.weight_hh = nn.Parameter(torch.empty(gh, hidden_size))  # U
        self.bias = nn.Parameter(torch.empty(gh)) if bias else None  # b

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, as torch initializes its recurrent layers."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_projection(self, x: Tensor) -> Tensor:
        """W x + b for every gate: (..., I) -> (..., G·H). A layer applies it to all time steps at once."""
        return F.linear(x, self.weight_ih, self.bias)

    def step(self, gx: Tensor, state: State) -> State:
        """One time step from the input projection ``gx`` (B, G·H) and the previous state."""
        raise NotImplementedError

    def zero_state(self, batch_size: int, like: Tensor) -> State:
        return like.new_zeros(batch_size, self.hidden_size)

    def forward(self, x: Tensor, state: State | None = None) -> State:
        """x (B, I), state as ``zero_state`` (zeros when None) -> the next state."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise AicomputeError(
                f"{type(self).__name__} expects input (batch, {self.input_size}), got {tuple(x.shape)}"
            )
        if state is None:
            state = self.zero_state(x.shape[0], x)
        return self.step(self.input_projection(x), state)

    @torch.no_grad()
    def copy_torch_weights_(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> None:
        """Set this cell's weights from torch's four tensors (same gate order); b = b_ih + b_hh."""
        if w_ih.shape != self.weight_ih.shape or w_hh.shape != self.weight_hh.shape:
            raise AicomputeError(
                f"torch weights {tuple(w_ih.shape)}, {tuple(w_hh.shape)} do not fit {type(self).__name__} "
                f"weights {tuple(self.weight_ih.shape)}, {tuple(self.weight_hh.shape)}"
            )
        if (b_ih is None) != (self.bias is None):
            raise AicomputeError(f"bias mismatch: the torch module has bias={b_ih is not None}, this cell "
                                 f"bias={self.bias is not None}")
        self.weight_ih.copy_(w_ih)
        self.weight_hh.copy_(w_hh)
        if self.bias is not None:
            self.bias.copy_(b_ih + b_hh)

    def copy_from_torch_(self, cell: nn.Module) -> None:
        """Copy the weights of a torch cell (``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell``) into this one."""
        if not isinstance(cell, self.torch_class):
            raise AicomputeError(f"{type(self).__name__} copies from {self.torch_class.__name__}, "
                                 f"not {type(cell).__name__}")
        self.copy_torch_weights_(cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)

    @classmethod
    def from_torch(cls, cell: nn.Module) -> _Cell:
        """A new cell computing the same function as the torch cell (same dtype and device)."""
        if not isinstance(cell, cls.torch_class):
            raise AicomputeError(f"{cls.__name__}.from_torch takes a {cls.torch_class.__name__}, "
                                 f"not {type(cell).__name__}")
        new = cls(cell.input_size, cell.hidden_size, bias=cell.bias, **cls._torch_options(cell))
        new = new.to(device=cell.weight_ih.device, dtype=cell.weight_ih.dtype)
        new.copy_from_torch_(cell)
        return new

    @classmethod
    def _torch_options(cls, module: nn.Module) -> dict:
        """Constructor options matching a torch cell or layer (nonlinearity, reset_after...)."""
        return {}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias is not None}"


class RNNCell(_Cell):
    """h_t = tanh(U h_{t−1} + W x_t + b); with ``output_size``, ``readout(h)`` gives y_t = V h_t."""

    num_gates = 1
    torch_class = nn.RNNCell

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
        output_size: int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias=bias)
        if nonlinearity not in ("tanh", "relu"):
            raise AicomputeError(f"RNN nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.V = nn.Linear(hidden_size, output_size, bias=False) if output_size is not None else None
        self.reset_parameters()

    def step(self, gx: Tensor, h: Tensor) -> Tensor:
        z = gx + F.linear(h, self.weight_hh)  # W x + b + U h
        return torch.tanh(z) if self.nonlinearity == "tanh" else torch.relu(z)

    def readout(self, h: Tensor) -> Tensor:
        """y_t = V h_t; h itself when the cell has no V (``output_size=None``)."""
        return h if self.V is None else self.V(h)

    @classmethod
    def _torch_options(cls, module: nn.Module) -> dict:
        return {"nonlinearity": module.nonlinearity}


class LSTMCell(_Cell):
    """The LSTM cell: forget, input and output gates, candidate c̃, cell state c (module docstring)."""

    num_gates = 4
    torch_class = nn.LSTMCell

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, bias=bias)
        self.reset_parameters()

    def zero_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        h = like.new_zeros(batch_size, self.hidden_size)
        return h, torch.zeros_like(h)

    def step(self, gx: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h_prev, c_prev = state
        pre = gx + F.linear(h_prev, self.weight_hh)  # (B, 4H): W x + U h + b for the four blocks
        i_pre, f_pre, c_pre, o_pre = pre.chunk(4, dim=-1)  # torch's block order: i, f, c̃, o
        i, f, o = torch.sigmoid(i_pre), torch.sigmoid(f_pre), torch.sigmoid(o_pre)
        c_tilde = torch.tanh(c_pre)
        c = f * c_prev + i * c_tilde
        h = o * torch.tanh(c)
        return h, c


class GRUCell(_Cell):
    """The GRU cell: update gate z, reset gate r, candidate h̃ (module docstring).

    ``reset_after=False`` (the seed's form): h̃ = tanh(W_h x + U_h (r ⊙ h) + b_h).
    ``reset_after=True`` (torch's form): h̃ = tanh(W_h x + b_h + r ⊙ (U_h h + b_hn)), with an extra ``bias_hn``.
    """

    num_gates = 3
    torch_class = nn.GRUCell

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, reset_after: bool = False) -> None:
        super().__init__(input_size, hidden_size, bias=bias)
        self.reset_after = reset_after
        self.bias_hn = nn.Parameter(torch.empty(hidden_size)) if bias and reset_after else None
        self.reset_parameters()

    def step(self, gx: Tensor, h_prev: Tensor) -> Tensor:
        hs = self.hidden_size
        gx_rz, gx_h = gx[..., : 2 * hs], gx[..., 2 * hs:]  # (B, 2H) for r, z; (B, H) for h̃
        u_rz, u_h = self.weight_hh[: 2 * hs], self.weight_hh[2 * hs:]  # (2H, H), (H, H)
        r, z = torch.sigmoid(gx_rz + F.linear(h_prev, u_rz)).chunk(2, dim=-1)  # torch's block order: r, z, h̃
        if self.reset_after:
            h_tilde = torch.tanh(gx_h + r * F.linear(h_prev, u_h, self.bias_hn))
        else:
            h_tilde = torch.tanh(gx_h + F.linear(r * h_prev, u_h))
        return z * h_prev + (1.0 - z) * h_tilde

    @torch.no_grad()
    def copy_torch_weights_(self, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> None:
        """Set the weights from torch's; needs ``reset_after=True`` (torch's form). b_hn goes to ``bias_hn``."""
        if not self.reset_after:
            raise AicomputeError(
                "torch's GRU applies the reset gate after the recurrent matmul; a seed-form GRU "
                "(reset_after=False) computes a different function. Build it with reset_after=True "
                "or use GRUCell.from_torch / GRU.from_torch"
            )
        super().copy_torch_weights_(w_ih, w_hh, b_ih, b_hh)
        if self.bias is not None:
            hs = self.hidden_size
            self.bias[2 * hs:].copy_(b_ih[2 * hs:])  # b_h is b_in alone; b_hn sits inside r ⊙ (...)
            self.bias_hn.copy_(b_hh[2 * hs:])

    @classmethod
    def _torch_options(cls, module: nn.Module) -> dict:
        return {"reset_after": True}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reset_after={self.reset_after}"


class _Stacked(nn.Module):
    """``num_layers`` cells stacked; the shared time loop of :class:`RNN`, :class:`LSTM` and :class:`GRU`."""

    cell_class: ClassVar[type[_Cell]]
    torch_class: ClassVar[type[nn.Module]]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        **cell_options,
    ) -> None:
        super().__init__()
        positive_int("num_layers", num_layers)
        probability("dropout", dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout = batch_first, dropout
        self.cells = nn.ModuleList(
            self.cell_class(input_size if i == 0 else hidden_size, hidden_size, bias=bias, **cell_options)
            for i in range(num_layers)
        )

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """x (T, B, I) or (B, T, I) if ``batch_first`` -> (output of the same layout with H features, state)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            order = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise AicomputeError(f"{type(self).__name__} expects input {order}, {self.input_size}), "
                                 f"got {tuple(x.shape)}")
        if self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
        layer_states = self._unstack(state, x)
        finals = []
        for i, cell in enumerate(self.cells):
            gx = cell.input_projection(x)  # (T, B, G·H): the input side of every step at once
            s = layer_states[i]
            outputs = []
            for t in range(x.shape[0]):
                s = cell.step(gx[t], s)
                outputs.append(s[0] if isinstance(s, tuple) else s)
            x = torch.stack(outputs)  # (T, B, H)
            if self.dropout > 0.0 and self.training and i < self.num_layers - 1:
                x = F.dropout(x, p=self.dropout)
            finals.append(s)
        x = self._readout(x)
        if self.batch_first:
            x = x.transpose(0, 1)  # (T, B, ·) -> (B, T, ·)
        return x, self._stack(finals)

    def _readout(self, x: Tensor) -> Tensor:
        return x

    def _unstack(self, state: Tensor | None, x: Tensor) -> list[State]:
        """(L, B, H) -> one (B, H) state per layer (zeros when None)."""
        if state is None:
            return [cell.zero_state(x.shape[1], x) for cell in self.cells]
        self._check_state(state, x)
        return list(state.unbind(0))

    def _stack(self, finals: list[State]) -> State:
        return torch.stack(finals)  # (L, B, H)

    def _check_state(self, t: Tensor, x: Tensor) -> None:
        want = (self.num_layers, x.shape[1], self.hidden_size)
        if tuple(t.shape) != want:
            raise AicomputeError(f"{type(self).__name__} state must have shape (num_layers, batch, hidden) = "
                                 f"{want}, got {tuple(t.shape)}")

    @classmethod
    def from_torch(cls, module: nn.Module) -> _Stacked:
        """A new layer computing the same function as the torch layer (same dtype, device and layout)."""
        if not isinstance(module, cls.torch_class):
            raise AicomputeError(f"{cls.__name__}.from_torch takes a {cls.torch_class.__name__}, "
                                 f"not {type(module).__name__}")
        if module.bidirectional or getattr(module, "proj_size", 0):
            raise AicomputeError("bidirectional and projected (proj_size > 0) torch layers are not supported")
        w = module.weight_ih_l0
        new = cls(module.input_size, module.hidden_size, module.num_layers, bias=module.bias,
                  batch_first=module.batch_first, dropout=module.dropout,
                  **cls.cell_class._torch_options(module)).to(device=w.device, dtype=w.dtype)
        for i, cell in enumerate(new.cells):
            biases = [getattr(module, f"bias_{k}_l{i}") if module.bias else None for k in ("ih", "hh")]
            cell.copy_torch_weights_(getattr(module, f"weight_ih_l{i}"), getattr(module, f"weight_hh_l{i}"), *biases)
        return new

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, batch_first={self.batch_first}, dropout={self.dropout}"


class RNN(_Stacked):
    """Stacked :class:`RNNCell`. With ``output_size`` the output is y_t = V h_t of the top layer, (T, B, O)."""

    cell_class = RNNCell
    torch_class = nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, nonlinearity: Literal["tanh", "relu"] = "tanh",
                 output_size: int | None = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first, dropout=dropout,
                         nonlinearity=nonlinearity)
        if output_size is not None:  # only the top cell reads out
            top = self.cells[-1]
            top.V = nn.Linear(hidden_size, output_size, bias=False)
            top.reset_parameters()

    def _readout(self, x: Tensor) -> Tensor:
        return self.cells[-1].readout(x)


class LSTM(_Stacked):
    """Stacked :class:`LSTMCell`; the state is (h, c), each (L, B, H)."""

    cell_class = LSTMCell
    torch_class = nn.LSTM

    def _unstack(self, state: tuple[Tensor, Tensor] | None, x: Tensor) -> list[State]:
        if state is None:
            return [cell.zero_state(x.shape[1], x) for cell in self.cells]
        if not isinstance(state, tuple) or len(state) != 2:
            raise AicomputeError("LSTM state must be a tuple (h, c), each (num_layers, batch, hidden)")
        for t in state:
            self._check_state(t, x)
        return list(zip(state[0].unbind(0), state[1].unbind(0)))

    def _stack(self, finals: list[State]) -> tuple[Tensor, Tensor]:
        return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])


class GRU(_Stacked):
    """Stacked :class:`GRUCell`; ``reset_after`` picks the seed's (False) or torch's (True) reset gate."""

    cell_class = GRUCell
    torch_class = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, reset_after: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias=bias, batch_first=batch_first, dropout=dropout,
                         reset_after=reset_after)
