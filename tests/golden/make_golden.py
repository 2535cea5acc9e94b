#!/usr/bin/env python3
"""Writes nn_golden.safetensors: PyTorch's outputs and gradients for Tessera's layers,
losses, optimizers and learning-rate schedules on fixed small inputs.

The C++ tests (tests/test_nn_golden.cc) read the committed file; this script is only
needed to regenerate it:  python3 tests/golden/make_golden.py  (PyTorch and NumPy, from
Debian's python3-torch or PyPI). Entries are "<case>.<tensor>"; every case re-seeds, so
adding one does not change the others.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = {}


def put(case, name, t):
    # clone: parameters change in place after being recorded
    t = t.detach().clone() if isinstance(t, torch.Tensor) else torch.tensor(t)
    OUT[f"{case}.{name}"] = t.contiguous().cpu()


def seeded(case):
    torch.manual_seed(sum(map(ord, case)) * 7919)


def layer_case(case, module, *inputs, extra=None):
    """Runs module on inputs, backpropagates a random output gradient, and stores the
    inputs, parameters (before), output, and gradients of inputs and parameters."""
    for i, x in enumerate(inputs):
        put(case, f"x{i}", x)
    for name, p in module.named_parameters():
        put(case, "param." + name, p)
    for name, b in module.named_buffers():
        put(case, "buffer_before." + name, b.clone())
    xs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = module(*xs)
    g = torch.randn_like(y)
    put(case, "y", y)
    put(case, "gy", g)
    y.backward(g)
    for i, x in enumerate(xs):
        if x.grad is not None:
            put(case, f"gx{i}", x.grad)
    for name, p in module.named_parameters():
        put(case, "grad." + name, p.grad)
    for name, b in module.named_buffers():
        put(case, "buffer_after." + name, b)


def layers():
    def c(name):
        seeded(name)
        return name

    layer_case(c("linear"), nn.Linear(4, 5), torch.randn(3, 4))
    layer_case(c("bilinear"), nn.Bilinear(3, 4, 2), torch.randn(5, 3), torch.randn(5, 4))
    layer_case(c("conv1d"), nn.Conv1d(3, 4, 3, stride=2, padding=1), torch.randn(2, 3, 9))
    layer_case(c("conv2d"), nn.Conv2d(3, 4, 3, stride=1, padding=1, dilation=1),
               torch.randn(2, 3, 6, 5))
    layer_case(c("conv2d_strided"), nn.Conv2d(4, 6, (3, 2), stride=2, padding=(1, 0),
                                              dilation=(1, 2), groups=2), torch.randn(2, 4, 7, 8))
    layer_case(c("conv3d"), nn.Conv3d(2, 3, 2, padding=1), torch.randn(1, 2, 3, 4, 3))
    layer_case(c("depthwise"), nn.Conv2d(3, 6, 3, padding=1, groups=3, bias=False),
               torch.randn(2, 3, 5, 5))
    layer_case(c("conv_transpose1d"), nn.ConvTranspose1d(3, 2, 3, stride=2, padding=1,
                                                         output_padding=1), torch.randn(2, 3, 5))
    layer_case(c("conv_transpose2d"), nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1),
               torch.randn(2, 2, 4, 3))
    layer_case(c("maxpool1d"), nn.MaxPool1d(3, stride=2, padding=1), torch.randn(2, 3, 9))
    layer_case(c("maxpool2d"), nn.MaxPool2d(2), torch.randn(2, 3, 6, 6))
    layer_case(c("avgpool2d"), nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                            count_include_pad=False), torch.randn(2, 3, 7, 6))
    layer_case(c("avgpool1d"), nn.AvgPool1d(2), torch.randn(2, 3, 8))
    layer_case(c("adaptive_avg2d"), nn.AdaptiveAvgPool2d((3, 2)), torch.randn(2, 3, 7, 5))
    layer_case(c("adaptive_avg1d"), nn.AdaptiveAvgPool1d(4), torch.randn(2, 3, 10))
    bn = nn.BatchNorm2d(3, momentum=0.2)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    layer_case(c("batchnorm2d_train"), bn, torch.randn(4, 3, 3, 2) * 2 + 1)
    bn = nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bn.eval()
    layer_case(c("batchnorm1d_eval"), bn, torch.randn(6, 5))
    layer_case(c("batchnorm1d_train3d"), nn.BatchNorm1d(3), torch.randn(4, 3, 5))
    ln = nn.LayerNorm([4, 3])
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-0.5, 0.5)
    layer_case(c("layernorm"), ln, torch.randn(2, 5, 4, 3))
    gn = nn.GroupNorm(2, 4)
    with torch.no_grad():
        gn.weight.uniform_(0.5, 1.5)
    layer_case(c("groupnorm"), gn, torch.randn(3, 4, 5))
    layer_case(c("instancenorm"), nn.InstanceNorm2d(3), torch.randn(2, 3, 4, 4))
    layer_case(c("embedding"), nn.Embedding(7, 3, padding_idx=2),
               torch.tensor([[0, 2, 6], [2, 1, 1]]))
    layer_case(c("upsample_bilinear"), nn.Upsample(scale_factor=2, mode="bilinear",
                                                   align_corners=False), torch.randn(1, 2, 3, 4))
    layer_case(c("zeropad2d"), nn.ZeroPad2d((1, 2, 0, 1)), torch.randn(1, 2, 3, 3))
    acts = {
        "relu": nn.ReLU(), "relu6": nn.ReLU6(), "leaky_relu": nn.LeakyReLU(0.2),
        "elu": nn.ELU(0.7), "selu": nn.SELU(), "gelu": nn.GELU(), "gelu_tanh": nn.GELU("tanh"),
        "silu": nn.SiLU(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(),
        "softplus": nn.Softplus(2.0, 5.0), "softsign": nn.Softsign(),
        "hardsigmoid": nn.Hardsigmoid(), "hardswish": nn.Hardswish(),
        "softmax": nn.Softmax(1), "logsoftmax": nn.LogSoftmax(-1),
    }
    for name, m in acts.items():
        layer_case(c("act_" + name), m, torch.randn(3, 7) * 4)


def loss_case(case, fn, inputs, targets, grad_inputs=(0,)):
    seeded(case)
    for i, x in enumerate(inputs):
        put(case, f"x{i}", x)
    for i, t in enumerate(targets):
        put(case, f"t{i}", t)
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs, *targets)
    g = torch.randn_like(y) if y.dim() > 0 else torch.tensor(1.0)
    y.backward(g)
    put(case, "y", y)
    put(case, "gy", g)
    for i, x in enumerate(xs):
        put(case, f"gx{i}", x.grad)


def losses():
    torch.manual_seed(11)
    logits = torch.randn(6, 5)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    w = torch.rand(5) + 0.5
    ignore = torch.tensor([0, -100, 2, 2, -100, 3])
    loss_case("ce", lambda x, t: F.cross_entropy(x, t), [logits], [labels])
    loss_case("ce_weighted_smooth", lambda x, t, w: F.cross_entropy(x, t, weight=w,
              label_smoothing=0.1), [logits], [labels, w])
    loss_case("ce_ignore_smooth", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.2),
              [logits], [ignore])
    loss_case("ce_sum", lambda x, t: F.cross_entropy(x, t, reduction="sum"), [logits], [labels])
    loss_case("ce_none", lambda x, t: F.cross_entropy(x, t, reduction="none"), [logits],
              [labels])
    soft = torch.softmax(torch.randn(6, 5), 1)
    loss_case("ce_soft", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), [logits],
              [soft])
    loss_case("ce_spatial", lambda x, t: F.cross_entropy(x, t), [torch.randn(2, 3, 4)],
              [torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])])
    loss_case("nll", lambda x, t, w: F.nll_loss(x, t, weight=w), [torch.randn(6, 5)],
              [labels, w])
    p = torch.rand(4, 3) * 0.9 + 0.05
    y01 = (torch.rand(4, 3) > 0.5).float()
    loss_case("bce", lambda x, t: F.binary_cross_entropy(x, t), [p], [y01])
    loss_case("bce_logits", lambda x, t, pw: F.binary_cross_entropy_with_logits(
        x, t, pos_weight=pw), [torch.randn(4, 3) * 3], [y01, torch.tensor([1.0, 2.0, 0.5])])
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    loss_case("mse", lambda x, t: F.mse_loss(x, t), [a], [b])
    loss_case("l1", lambda x, t: F.l1_loss(x, t, reduction="sum"), [a], [b])
    loss_case("huber", lambda x, t: F.huber_loss(x, t, delta=0.7), [a * 2], [b])
    loss_case("smooth_l1", lambda x, t: F.smooth_l1_loss(x, t, beta=0.5), [a * 2], [b])
    logq = torch.log_softmax(torch.randn(4, 5), 1)
    target_p = torch.softmax(torch.randn(4, 5), 1)
    target_p[0, 0] = 0.0
    loss_case("kl_div", lambda x, t: F.kl_div(x, t, reduction="batchmean"), [logq], [target_p])
    loss_case("kl_div_log", lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True),
              [logq], [torch.log_softmax(torch.randn(4, 5), 1)])
    loss_case("cosine_embedding", lambda x1, x2, y: F.cosine_embedding_loss(x1, x2, y,
              margin=0.2), [torch.randn(5, 4), torch.randn(5, 4)],
              [torch.tensor([1, -1, 1, -1, -1])])
    loss_case("triplet", lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=0.5),
              [torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)], [])


def optimizers():
    torch.manual_seed(5)
    p0 = torch.randn(4, 3)
    grads = [torch.randn(4, 3) for _ in range(5)]
    put("optim", "p0", p0)
    for k, g in enumerate(grads):
        put("optim", f"g{k}", g)
    cases = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
        "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1,
                                                  weight_decay=0.01),
        "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
        "adam_amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.9), amsgrad=True),
        "adamw": lambda p: torch.optim.AdamW(p, lr=0.01),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01),
        "rmsprop_centered": lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5,
                                                          centered=True, weight_decay=0.1),
        "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01,
                                                 initial_accumulator_value=0.1),
        "adadelta": lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.8, weight_decay=0.05),
        "adamax": lambda p: torch.optim.Adamax(p, lr=0.02),
    }
    for name, make in cases.items():
        p = nn.Parameter(p0.clone())
        opt = make([p])
        for k, g in enumerate(grads):
            p.grad = g.clone()
            opt.step()
            put("optim_" + name, f"p{k}", p)


def schedules():
    def run(name, make, steps=12, metrics=None):
        p = nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.5)
        sched = make(opt)
        lrs = [opt.param_groups[0]["lr"]]
        for k in range(steps):
            opt.step()
            if metrics is None:
                sched.step()
            else:
                sched.step(metrics[k])
            lrs.append(opt.param_groups[0]["lr"])
        put("sched_" + name, "lr", torch.tensor(lrs, dtype=torch.float64))

    S = torch.optim.lr_scheduler
    run("step", lambda o: S.StepLR(o, 3, gamma=0.5))
    run("multistep", lambda o: S.MultiStepLR(o, [2, 5, 9], gamma=0.3))
    run("exponential", lambda o: S.ExponentialLR(o, 0.9))
    run("cosine", lambda o: S.CosineAnnealingLR(o, 10, eta_min=0.01))
    run("warm_restarts", lambda o: S.CosineAnnealingWarmRestarts(o, 3, T_mult=2, eta_min=0.05))
    run("one_cycle", lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=13, cycle_momentum=False))
    plateau = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.86, 0.9, 0.9, 0.9, 0.9]
    run("plateau", lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1),
        metrics=plateau)


def rnn_case(case, module, x, h0=None, c0=None, lengths=None):
    """Output, final states and gradients of a recurrent layer (packed when lengths)."""
    seeded(case)
    put(case, "x0", x)
    for name, p in module.named_parameters():
        put(case, "param." + name, p)
    xs = x.clone().requires_grad_(True)
    states = None
    if h0 is not None:
        put(case, "h0", h0)
        states = h0 if c0 is None else (h0, c0)
        if c0 is not None:
            put(case, "c0", c0)
    if lengths is not None:
        put(case, "lengths", lengths)
        packed = nn.utils.rnn.pack_padded_sequence(xs, lengths, batch_first=module.batch_first,
                                                   enforce_sorted=False)
        out, st = module(packed, states)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=module.batch_first,
                                                  total_length=x.shape[1 if module.batch_first else 0])
    else:
        out, st = module(xs, states)
    h, c = (st if isinstance(st, tuple) else (st, None))
    gy, gh = torch.randn_like(out), torch.randn_like(h)
    loss = (out * gy).sum() + (h * gh).sum()
    put(case, "y", out)
    put(case, "gy", gy)
    put(case, "h", h)
    put(case, "gh", gh)
    if c is not None:
        gc = torch.randn_like(c)
        loss = loss + (c * gc).sum()
        put(case, "c", c)
        put(case, "gc", gc)
    loss.backward()
    put(case, "gx0", xs.grad)
    for name, p in module.named_parameters():
        put(case, "grad." + name, p.grad)


def sequence_models():
    seeded("rnn")
    rnn_case("rnn_tanh", nn.RNN(3, 4, num_layers=2), torch.randn(5, 2, 3), h0=torch.randn(2, 2, 4))
    seeded("rnn_relu")
    rnn_case("rnn_relu", nn.RNN(3, 4, nonlinearity="relu", batch_first=True),
             torch.randn(2, 5, 3))
    seeded("lstm")
    rnn_case("lstm_bi", nn.LSTM(3, 4, num_layers=2, bidirectional=True), torch.randn(5, 3, 3),
             h0=torch.randn(4, 3, 4), c0=torch.randn(4, 3, 4))
    seeded("lstm_len")
    rnn_case("lstm_lengths", nn.LSTM(3, 4, bidirectional=True, batch_first=True),
             torch.randn(3, 6, 3), lengths=torch.tensor([6, 2, 4]))
    seeded("gru")
    rnn_case("gru_bi", nn.GRU(3, 5, num_layers=2, bidirectional=True), torch.randn(4, 2, 3))
    seeded("gru_len")
    rnn_case("gru_lengths", nn.GRU(2, 3), torch.randn(5, 3, 2), lengths=torch.tensor([3, 5, 1]))

    case = "mha"
    seeded(case)
    mha = nn.MultiheadAttention(8, 2)
    with torch.no_grad():
        mha.in_proj_bias.uniform_(-0.5, 0.5)
        mha.out_proj.bias.uniform_(-0.5, 0.5)
    q, k, v = torch.randn(4, 3, 8), torch.randn(5, 3, 8), torch.randn(5, 3, 8)
    kpm = torch.tensor([[False] * 5, [False, False, False, True, True], [False] * 4 + [True]])
    attn_mask = torch.zeros(4, 5)
    attn_mask[0, 4] = float("-inf")
    attn_mask[2, 1] = -1.5
    for name, t in [("q", q), ("k", k), ("v", v), ("kpm", kpm), ("attn_mask", attn_mask)]:
        put(case, name, t.float() if name == "kpm" else t)
    for name, p in mha.named_parameters():
        put(case, "param." + name, p)
    qs, ks, vs = (t.clone().requires_grad_(True) for t in (q, k, v))
    out, w = mha(qs, ks, vs, key_padding_mask=kpm, attn_mask=attn_mask)
    gy = torch.randn_like(out)
    out.backward(gy)
    put(case, "y", out)
    put(case, "weights", w)
    put(case, "gy", gy)
    for name, t in [("gq", qs), ("gk", ks), ("gv", vs)]:
        put(case, name, t.grad)
    for name, p in mha.named_parameters():
        put(case, "grad." + name, p.grad)

    case = "encoder"
    seeded(case)
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    x = torch.randn(3, 5, 8)
    kpm = torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    put(case, "x0", x)
    put(case, "kpm", kpm.float())
    for name, p in enc.named_parameters():
        put(case, "param." + name, p)
    xs = x.clone().requires_grad_(True)
    y = enc(xs, src_key_padding_mask=kpm)
    gy = torch.randn_like(y)
    y.backward(gy)
    put(case, "y", y)
    put(case, "gy", gy)
    put(case, "gx0", xs.grad)
    for name, p in enc.named_parameters():
        put(case, "grad." + name, p.grad)

    case = "decoder"
    seeded(case)
    dec = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, norm_first=True,
                                     activation="gelu")
    tgt, mem = torch.randn(4, 2, 8), torch.randn(6, 2, 8)
    put(case, "x0", tgt)
    put(case, "x1", mem)
    for name, p in dec.named_parameters():
        put(case, "param." + name, p)
    ts, ms = tgt.clone().requires_grad_(True), mem.clone().requires_grad_(True)
    y = dec(ts, ms, tgt_mask=nn.Transformer.generate_square_subsequent_mask(4))
    gy = torch.randn_like(y)
    y.backward(gy)
    put(case, "y", y)
    put(case, "gy", gy)
    put(case, "gx0", ts.grad)
    put(case, "gx1", ms.grad)
    for name, p in dec.named_parameters():
        put(case, "grad." + name, p.grad)

    case = "ctc"
    seeded(case)
    logits = torch.randn(6, 3, 5)
    targets = torch.tensor([[1, 1, 2], [3, 4, 0], [2, 0, 0]])
    in_len, tgt_len = torch.tensor([6, 5, 4]), torch.tensor([3, 2, 1])
    for name, t in [("x0", logits), ("targets", targets), ("in_len", in_len), ("tgt_len", tgt_len)]:
        put(case, name, t)
    xs = logits.clone().requires_grad_(True)
    loss = F.ctc_loss(torch.log_softmax(xs, 2), targets, in_len, tgt_len)
    loss.backward()
    put(case, "y", loss)
    put(case, "gx0", xs.grad)
    per_seq = F.ctc_loss(torch.log_softmax(logits, 2), targets, in_len, tgt_len, reduction="none")
    put(case, "y_none", per_seq)


def save(path):
    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name in sorted(OUT):
        t = OUT[name]
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"torch": torch.__version__}
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    layers()
    losses()
    optimizers()
    schedules()
    sequence_models()
    here = os.path.dirname(os.path.abspath(__file__))
    save(os.path.join(here, "nn_golden.safetensors"))
    print(f"wrote {len(OUT)} tensors")
