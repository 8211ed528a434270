#!/usr/bin/python3
"""Tuned PyTorch reference for the specssl side-by-side benchmark.

Implements exactly the workloads of bench/README.md (the contract the C
benchmarks implement): the bench_cnn pretraining step (L 1024, B 256), the
ConvSC reference-recipe step (L 4020, B 64, V 4, cut pieces, external-variable
head) and eval-mode embedding for both encoders. The method follows
reference/specrrmoco.md (augmentations 2.2-2.5 and 2.7, encoder 3, projection
head 4, RR heads 5, MoCo v2 6, one iteration 7, SGD 8).

Run with Debian's /usr/bin/python3 (python3-torch 1.13), OPENBLAS_CORETYPE
unset and the glibc malloc tunables of bench/run.sh, one workload per process:

    env -u OPENBLAS_CORETYPE GLIBC_TUNABLES=... /usr/bin/python3 \
        bench/torch_reference.py --workload cnn_pretrain --threads 2

Output: the settings, sanity values, then one line
    workload=... threads=N spectra_s=... step_ms=... peak_rss_mb=...
(with --json: one JSON object instead of that line).
"""
import argparse
import math
import os
import sys
import time

WORKLOADS = ("cnn_pretrain", "convsc_pretrain", "cnn_embed", "convsc_embed")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", choices=WORKLOADS, help="workload to run")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--steps", type=int, default=10, help="timed steps (>= 10 recommended)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OpenBLAS threads used by torch's matmuls (default 1: torch's "
                   "intra-op threads are OpenMP; a second OpenBLAS pthread pool beside them "
                   "used more CPU for no measurable gain on 2 cores)")
    p.add_argument("--mkldnn", choices=("on", "off"), default="on",
                   help="oneDNN convolutions (torch.backends.mkldnn.enabled)")
    p.add_argument("--pool", choices=("fused", "native"), default="fused",
                   help="training-mode ReLU + MaxPool1d(2): a fused autograd function (same "
                   "values and gradients, PyTorch's first-maximum tie rule) or "
                   "F.max_pool1d(F.relu(x), 2)")
    p.add_argument("--embed-mode", choices=("auto", "eager", "freeze", "optimize"),
                   default="auto", help="eval-mode execution: eager, jit.trace+freeze, "
                   "jit.trace+freeze+optimize_for_inference, or auto (time all, keep fastest)")
    p.add_argument("--cpu-capability", choices=("auto", "avx512", "avx2", "default"),
                   default="auto", help="ATEN_CPU_CAPABILITY for torch's own kernels; auto = "
                   "avx512 when the CPU has AVX-512 F/BW/VL/DQ (torch 1.13 picks AVX2 "
                   "otherwise; AVX-512 is ~30%% faster for batch norm here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-aug", type=int, default=4,
                   help="spectra checked against the per-spectrum scipy/numpy augmentation "
                   "(0: skip)")
    p.add_argument("--check-parity", metavar="DIR", default=None,
                   help="check the ConvSC encoder against the published-weight fixtures "
                   "(DIR = data/convsc_parity, weights in DIR/../specrrmoco_ckpt) and exit")
    a = p.parse_args()
    if a.workload is None and a.check_parity is None:
        p.error("--workload is required")
    if a.threads < 1 or a.steps < 1 or a.warmup < 0:
        p.error("--threads and --steps must be >= 1, --warmup >= 0")
    return a


ARGS = parse_args()
# OpenBLAS (used by torch for matmul/Linear and by numpy) reads its thread count
# when the library loads, and torch.set_num_threads does not change it: set it
# before importing torch (otherwise a 1-thread run would use 2 BLAS threads).
BLAS_THREADS = ARGS.blas_threads
os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))


def _has_avx512():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((ln for ln in fh if ln.startswith("flags")), "").split()
    except OSError:
        return False
    return all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq"))


if ARGS.cpu_capability == "auto":
    if _has_avx512():
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx512")
elif ARGS.cpu_capability != "default":
    os.environ["ATEN_CPU_CAPABILITY"] = ARGS.cpu_capability

import ctypes  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(1)
torch.backends.mkldnn.enabled = ARGS.mkldnn == "on"

F64 = torch.float64


# ---------------------------------------------------------------------------
# Augmentations (reference 2.2-2.5), batched, float64
# ---------------------------------------------------------------------------

def notaknot_basis(L, n):
    """n intervals, n+1 knots. (n+1, L) float64 matrix W with S(t) = sum_i y_i W[i, t] for the not-a-knot
    cubic spline through (x_i, y_i), x = linspace(0, L-1, n+1), evaluated at
    t = 0..L-1 (reference 2.2). The spline is linear in y, so the basis rows are
    the spline of the unit vectors: the (n+1)x(n+1) system is solved once for
    all right-hand sides and evaluated with gathered per-interval coefficients
    (intervals located against the stored knot array, as scipy does)."""
    x = np.linspace(0.0, L - 1.0, n + 1)
    h = (L - 1.0) / n
    A = np.zeros((n + 1, n + 1))
    Dm = np.zeros((n + 1, n + 1))  # rhs = Dm @ y
    A[0, 0:3] = (1.0, -2.0, 1.0)
    A[n, n - 2:n + 1] = (1.0, -2.0, 1.0)
    for i in range(1, n):
        A[i, i - 1:i + 2] = (1.0, 4.0, 1.0)
        Dm[i, i - 1:i + 2] = np.array([1.0, -2.0, 1.0]) * 6.0 / (h * h)
    Y = np.eye(n + 1)                              # columns = unit knot vectors
    M = np.linalg.solve(A, Dm @ Y)                 # (n+1, n+1) second derivatives
    t = np.arange(L, dtype=np.float64)
    i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, n - 1)
    d = t - x[i]
    yi, yi1 = Y[i], Y[i + 1]                       # (L, n+1)
    Mi, Mi1 = M[i], M[i + 1]
    b = (yi1 - yi) / h - h * (2.0 * Mi + Mi1) / 6.0
    S = yi + b * d[:, None] + Mi / 2.0 * (d * d)[:, None] + (Mi1 - Mi) * (d ** 3)[:, None] / (6.0 * h)
    return torch.from_numpy(np.ascontiguousarray(S.T))   # (n+1, L)


class Augmenter:
    """magnitude_warp(sigma 0.3, 4 knots) then time_warp(sigma 0.2, 8 knots), in
    float64, for a batch of rows at once; output float32."""

    MAG_SIGMA, MAG_KNOT = 0.3, 4
    TW_SIGMA, TW_KNOT = 0.2, 8

    def __init__(self, L):
        self.L = L
        self.Wmag = notaknot_basis(L, self.MAG_KNOT + 1)   # (6, L): 6 knots, 5 intervals
        self.Wtw = notaknot_basis(L, self.TW_KNOT + 1)     # (10, L)
        self.grid = torch.arange(L, dtype=F64)
        self.clamped = 0                               # time-warp speeds clamped to 1e-6

    def draw(self, R, gen):
        wm = torch.randn(R, self.MAG_KNOT + 2, dtype=F64, generator=gen).mul_(self.MAG_SIGMA).add_(1.0)
        wt = torch.randn(R, self.TW_KNOT + 2, dtype=F64, generator=gen).mul_(self.TW_SIGMA).add_(1.0)
        return wm, wt

    def __call__(self, x64, wm, wt):
        """x64: (R, L) float64 raw spectra; wm (R, 6), wt (R, 10) knot draws."""
        L = self.L
        mag = x64 * (wm @ self.Wmag)                   # magnitude warp
        s = wt @ self.Wtw                              # time-warp speeds s(t)
        s.clamp_(min=1e-6)
        c = torch.cumsum(s, dim=1)
        tt = c * ((L - 1) / c[:, -1:])                 # warped positions, increasing
        # np.interp(j; xp = tt, fp = mag) at integer j: k[j] = #{t : tt[t] <= j}
        # = cumulative histogram of ceil(tt) (O(L), equals searchsorted(..., right)).
        cj = torch.ceil(tt).clamp_(max=L).to(torch.int64)
        cnt = torch.zeros(x64.shape[0], L + 1, dtype=torch.int64)
        cnt.scatter_add_(1, cj, torch.ones_like(cj))
        k = torch.cumsum(cnt[:, :L], dim=1)            # (R, L) in 0..L
        lo = (k - 1).clamp_(0, L - 2)
        hi = lo + 1
        xlo, xhi = tt.gather(1, lo), tt.gather(1, hi)
        flo, fhi = mag.gather(1, lo), mag.gather(1, hi)
        out = flo + (self.grid - xlo) * (fhi - flo) / (xhi - xlo)
        out = torch.where(k == 0, mag[:, :1], out)
        out = torch.where(k == L, mag[:, -1:], out)
        return out.to(torch.float32)


def check_pool(gen):
    """Max |difference| of values and input gradients between relu_maxpool2 and
    F.max_pool1d(F.relu(x), 2), on data with ties and zeros."""
    x = torch.randn(6, 5, 64, generator=gen).round_()    # many exact ties and zeros
    x.requires_grad_(True)
    g = torch.randn(6, 5, 32, generator=gen)
    ref = F.max_pool1d(F.relu(x), 2)
    gref, = torch.autograd.grad(ref, x, g)
    out = relu_maxpool2(x)
    gout, = torch.autograd.grad(out, x, g)
    return max((out - ref).abs().max().item(), (gout - gref).abs().max().item())


def check_augmenter(aug, x, gen, nrows):
    """Max |difference| between the batched augmentation and a literal
    per-spectrum scipy CubicSpline + np.interp implementation (reference 2.4/2.5,
    float64, same knot draws)."""
    from scipy.interpolate import CubicSpline
    L = aug.L
    xr = x[:nrows].double()
    wm, wt = aug.draw(nrows, gen)
    got = aug(xr, wm, wt)
    worst = 0.0
    for r in range(nrows):
        xx = xr[r].numpy()
        t = np.arange(L)
        mag = xx * CubicSpline(np.linspace(0, L - 1, aug.MAG_KNOT + 2), wm[r].numpy())(t)
        s = CubicSpline(np.linspace(0, L - 1, aug.TW_KNOT + 2), wt[r].numpy())(t)
        c = np.cumsum(np.maximum(s, 1e-6))
        tt = (L - 1) * c / c[-1]
        ref = np.interp(t, tt, mag).astype(np.float32)
        worst = max(worst, float(np.max(np.abs(got[r].numpy() - ref))))
    return worst


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

class _ReluMaxPool2(torch.autograd.Function):
    """max_pool1d(relu(x), 2) along the last axis of a contiguous, even-length x.
    Backward routes the gradient to the first maximum of each window and to
    nothing when the maximum is <= 0 (ReLU'(0) = 0), exactly as PyTorch's
    ReLU + MaxPool1d. It saves a 0/1 float selection mask of x's shape (the
    same bytes as the int64 indices of max_pool1d) and the input gradient is
    two vectorised multiplies instead of zero-fill + scatter: about 2x faster
    than the native pair for the shapes here."""

    @staticmethod
    def forward(ctx, x):
        xv = x.view(*x.shape[:-1], x.shape[-1] // 2, 2)
        a, b = xv[..., 0], xv[..., 1]
        out = torch.maximum(a, b).clamp_(min=0.0)
        pos = out > 0
        sel = torch.empty(xv.shape, dtype=x.dtype)
        torch.logical_and(a >= b, pos, out=sel[..., 0])   # first maximum wins ties
        torch.logical_and(a < b, pos, out=sel[..., 1])
        ctx.save_for_backward(sel)
        return out

    @staticmethod
    def backward(ctx, g):
        sel, = ctx.saved_tensors
        gi = torch.empty(sel.shape, dtype=g.dtype)
        torch.mul(g, sel[..., 0], out=gi[..., 0])
        torch.mul(g, sel[..., 1], out=gi[..., 1])
        return gi.flatten(-2)


def relu_maxpool2(x):
    if (ARGS.pool == "fused" and torch.is_grad_enabled() and x.requires_grad
            and x.shape[-1] % 2 == 0 and x.is_contiguous()):
        return _ReluMaxPool2.apply(x)
    return F.max_pool1d(F.relu(x), 2)


class CNNEncoder(nn.Module):
    """bench_cnn: conv 1->32 k7 p3, ReLU, maxpool 2; conv 32->64 k5 p2, ReLU,
    maxpool 2; conv 64->128 k3 p1, ReLU; global average pool -> h (128)."""
    feat_dim = 128

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 32, 7, padding=3)
        self.conv2 = nn.Conv1d(32, 64, 5, padding=2)
        self.conv3 = nn.Conv1d(64, 128, 3, padding=1)

    def forward(self, x):
        h = relu_maxpool2(self.conv1(x.unsqueeze(1)))
        h = relu_maxpool2(self.conv2(h))
        return F.relu(self.conv3(h)).mean(dim=2)


class SplitBatchNorm1d(nn.BatchNorm1d):
    """Split BN as the reference (MoCo colab): in train mode the (n, C, l) input
    is viewed as (n/S, C*S, l), so split s = samples with index = s mod S."""

    def __init__(self, num_features, num_splits):
        super().__init__(num_features)
        self.num_splits = num_splits

    def forward(self, x):
        if self.training:
            n, C, l = x.shape
            S = self.num_splits
            rm = self.running_mean.repeat(S)
            rv = self.running_var.repeat(S)
            out = F.batch_norm(x.view(n // S, C * S, l), rm, rv, self.weight.repeat(S),
                               self.bias.repeat(S), True, self.momentum, self.eps).view(n, C, l)
            self.running_mean.copy_(rm.view(S, C).mean(dim=0))
            self.running_var.copy_(rv.view(S, C).mean(dim=0))
            return out
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


class ConvSC(nn.Module):
    """ConvSC_NoFdfwd (reference 3) with split BN, n_feature 64, O_channel 16,
    embed 128, 2 heads, adaptive pool 236."""
    feat_dim = 128

    def __init__(self, splits=8):
        super().__init__()
        C1, C3, E, P = 64, 16, 128, 236
        self.conv1 = nn.Conv1d(1, C1, 5, stride=2)
        self.bn1 = SplitBatchNorm1d(C1, splits)
        self.conv3 = nn.Conv1d(C1, C3, 5)
        self.bn3 = SplitBatchNorm1d(C3, splits)
        self.pool_bins = P
        self.emb = nn.Linear(P, E)
        self.emb_ln = nn.LayerNorm(E)
        self.in_proj = nn.Linear(C3, 3 * C3)         # MHA in_proj (rows q, k, v)
        self.out_proj = nn.Linear(C3, C3)
        self.heads = 2
        self.att_scale = 1.0 / math.sqrt(C3 // self.heads)
        self.cam_gamma = nn.Parameter(torch.zeros(1))
        self.ln = nn.LayerNorm(E)
        self.dec = nn.Conv1d(C3, 1, 1)
        self.bn_dec = SplitBatchNorm1d(1, splits)
        # reference init (3.8): conv/linear weights and BN gamma N(0, 0.05^2),
        # in_proj Xavier uniform with zero bias, out_proj bias 0
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.05)
            if isinstance(m, nn.BatchNorm1d):
                nn.init.normal_(m.weight, 0.0, 0.05)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x):
        B = x.shape[0]
        h = self.conv1(x.unsqueeze(1))
        h = relu_maxpool2(self.bn1(h))
        h = self.conv3(h)
        h = relu_maxpool2(self.bn3(h))
        h = F.adaptive_avg_pool1d(h, self.pool_bins)
        X = self.emb_ln(self.emb(h))                     # (B, 16, 128)
        # spatial MHA over the 128 positions (tokens = 16-vectors), 2 heads of 8
        C, T, H = X.shape[1], X.shape[2], self.heads
        Dh = C // H
        qkv = self.in_proj(X.transpose(1, 2))            # (B, T, 48)
        qkv = qkv.view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).reshape(3, B * H, T, Dh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.att_scale, dim=-1)
        o = torch.bmm(att, v).view(B, H, T, Dh).transpose(1, 2).reshape(B, T, C)
        A_S = self.out_proj(o).transpose(1, 2)           # (B, 16, 128)
        # channel attention (CAM): softmax(rowmax(E) - E) = softmax(-E)
        E = torch.bmm(X, X.transpose(1, 2))
        Att = torch.softmax(-E, dim=-1)
        A_C = self.cam_gamma * torch.bmm(Att, X) + X
        Z = self.ln(X + A_S + A_C)
        h = F.relu(self.bn_dec(self.dec(Z)))
        return h.view(B, -1)


class Projection(nn.Module):
    """Linear(128,128) -> ReLU -> Linear(128,128) -> L2 normalise (reference 4)."""

    def __init__(self, d=128):
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.fc2 = nn.Linear(d, d)

    def forward(self, h):
        return F.normalize(self.fc2(F.relu(self.fc1(h))), dim=1)


class QueryEncoder(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = Projection(encoder.feat_dim)

    def forward(self, x):
        return self.head(self.encoder(x))


def rr_head(d_in, n_out):
    """Linear(d_in, 64) -> BatchNorm1d(64) -> LeakyReLU(0.01) -> Linear(64, n_out)."""
    return nn.Sequential(nn.Linear(d_in, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.01),
                         nn.Linear(64, n_out))


# ---------------------------------------------------------------------------
# One pretraining step (reference 6-8)
# ---------------------------------------------------------------------------

class PretrainStep:
    def __init__(self, kind, L, B, V, gen, Q=4096, D=128, T=0.1, m=0.99, piece=0.2,
                 n_cut=5, n_ext=5, lam=0.01):
        self.kind, self.L, self.B, self.V = kind, L, B, V
        self.gen, self.T, self.m, self.lam = gen, T, m, lam
        self.rich = kind == "convsc"          # cut pieces + external-variable head
        self.q = QueryEncoder(ConvSC() if self.rich else CNNEncoder())
        self.k = QueryEncoder(ConvSC() if self.rich else CNNEncoder())
        self.k.load_state_dict(self.q.state_dict())
        for p in self.k.parameters():
            p.requires_grad_(False)
        self.q.train()
        self.k.train()
        self.qp = list(self.q.parameters())
        self.kp = list(self.k.parameters())
        self.queue = F.normalize(torch.randn(D, Q, generator=gen), dim=0)
        self.ptr = 0
        self.rel = rr_head(2 * D, 1).train()
        params = self.qp + list(self.rel.parameters())
        if self.rich:
            self.cls = rr_head(2 * D, n_cut).train()
            self.tmp = nn.Sequential(nn.LeakyReLU(0.01), nn.Linear(D, n_ext)).train()
            params += list(self.cls.parameters()) + list(self.tmp.parameters())
            self.w = int(piece * L)
            self.n_cut = n_cut
            self.n_ext = n_ext
            self.u = L / (2.0 * n_cut)
            self.ar_w = torch.arange(self.w)
        self.opt = torch.optim.SGD(params, lr=0.15, momentum=0.9, weight_decay=1e-4,
                                   foreach=True)
        self.aug = Augmenter(L)
        # RR inter-sample pairing (5.1): index lists over the view-major rows of F
        left, right, tgt = [], [], []
        b = torch.arange(B)
        c = 1
        for v1 in range(V):
            for v2 in range(v1 + 1, V):
                left += [v1 * B + b, v1 * B + b]
                right += [v2 * B + b, v2 * B + (b - c) % B]
                tgt += [torch.ones(B), torch.zeros(B)]
                c += 1
                if c >= B:
                    c = 1
        self.left, self.right = torch.cat(left), torch.cat(right)
        self.tgt = torch.cat(tgt).unsqueeze(1)
        self.zeros_B = torch.zeros(B, dtype=torch.int64)
        self.t_aug = []

    def moco_loss(self, q, k):
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue                    # queue detached, read before enqueue
        logits = torch.cat([l_pos, l_neg], dim=1) * (1.0 / self.T)
        return F.cross_entropy(logits, self.zeros_B)

    def keys(self, im):
        """f_k on a shuffled batch (shuffle BN), un-shuffled; no grad."""
        perm = torch.randperm(self.B, generator=self.gen)
        k = torch.empty(self.B, self.queue.shape[0])
        k[perm] = self.k(im[perm])
        return k

    def __call__(self, x, ext=None, report=None):
        B, V, L = self.B, self.V, self.L
        t0 = time.perf_counter()
        # (a) augmentation: 2 MoCo views + V RR views per spectrum, view-major
        nv = 2 + V
        wm, wt = self.aug.draw(nv * B, self.gen)
        views = self.aug(x.double().repeat(nv, 1), wm, wt)
        im1, im2, rr = views[:B], views[B:2 * B], views[2 * B:]
        if self.rich:
            s = torch.randint(0, L - self.w, (2, V * B), generator=self.gen)
            p0 = rr.gather(1, s[0].unsqueeze(1) + self.ar_w)
            p1 = rr.gather(1, s[1].unsqueeze(1) + self.ar_w)
            d = (s[0] - s[1]).abs().double()
            cut_lbl = torch.clamp((d / self.u).floor().long(), max=self.n_cut - 1)
            ext_lbl = ext.repeat(V)
        self.t_aug.append(time.perf_counter() - t0)
        # (b) momentum update of f_k parameters
        with torch.no_grad():
            torch._foreach_mul_(self.kp, self.m)
            torch._foreach_add_(self.kp, self.qp, alpha=1.0 - self.m)
        # (c) MoCo v2, symmetric
        q1 = self.q(im1)
        q2 = self.q(im2)
        with torch.no_grad():
            k2 = self.keys(im2)
            k1 = self.keys(im1)
        l12 = self.moco_loss(q1, k2)
        l21 = self.moco_loss(q2, k1)
        l_moco = l12 + l21
        # (d) RR inter-sample head
        Fz = self.q(rr)
        pairs = torch.cat([Fz.index_select(0, self.left), Fz.index_select(0, self.right)], dim=1)
        l_inter = F.binary_cross_entropy_with_logits(self.rel(pairs), self.tgt)
        loss = l_inter + self.lam * l_moco
        if self.rich:
            P0 = self.q(p0)
            P1 = self.q(p1)
            l_intra = F.cross_entropy(self.cls(torch.cat([P0, P1], dim=1)), cut_lbl)
            l_tmp = F.cross_entropy(self.tmp(Fz), ext_lbl)
            loss = loss + l_intra + l_tmp
        # (e) backward + SGD
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        # enqueue [k1; k2] with wrap-around (after backward: no clone of the queue
        # is needed, and nothing reads the queue in between)
        with torch.no_grad():
            keys = torch.cat([k1, k2], dim=0).t()
            n, Q = keys.shape[1], self.queue.shape[1]
            first = min(n, Q - self.ptr)
            self.queue[:, self.ptr:self.ptr + first] = keys[:, :first]
            if first < n:
                self.queue[:, :n - first] = keys[:, first:]
            self.ptr = (self.ptr + n) % Q
        if report is not None:
            report.update(L12=l12.item(), L21=l21.item(), L_inter=l_inter.item(),
                          loss=loss.item())
            if self.rich:
                report.update(L_intra=l_intra.item(), L_tmp=l_tmp.item())


# ---------------------------------------------------------------------------
# Data, settings, timing
# ---------------------------------------------------------------------------

def make_spectra(N, L, gen):
    """Synthetic peak spectra (Gaussian peaks + exponential background + noise,
    max-normalised), float32 (N, L); values only need to be realistic."""
    t = torch.arange(L, dtype=torch.float32)
    n_peaks = 12
    centre = torch.rand(N, n_peaks, 1, generator=gen) * 0.96 * L + 0.02 * L
    width = torch.rand(N, n_peaks, 1, generator=gen) * 10 + 2
    amp = torch.exp(torch.rand(N, n_peaks, 1, generator=gen) * math.log(20.0)) / 20.0
    x = (amp * torch.exp(-0.5 * ((t - centre) / width) ** 2)).sum(dim=1)
    x += 0.04 * torch.rand(N, 1, generator=gen) * torch.exp(-t / (0.4 * L))
    x += 0.004 * torch.randn(N, L, generator=gen)
    return (x / x.max(dim=1, keepdim=True).values).contiguous()


def openblas_core():
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def allocator():
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:
        maps = ""
    if "libjemalloc" in maps:
        return f"jemalloc(MALLOC_CONF={os.environ.get('MALLOC_CONF', '')})"
    if "libtcmalloc" in maps:
        return "tcmalloc"
    return f"glibc(GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')})"


def settings():
    cfg = torch.__config__.show()
    blas = [s.split("=")[1] for s in cfg.replace(",", " ").split() if s.startswith("BLAS_INFO=")]
    dnnl = [ln.strip(" -") for ln in cfg.splitlines() if "MKL-DNN" in ln or "oneDNN" in ln]
    cap = [ln.strip(" -") for ln in cfg.splitlines() if "CPU capability" in ln]
    env = {k: os.environ.get(k, "(unset)") for k in
           ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY",
            "GLIBC_TUNABLES",
            "ATEN_CPU_CAPABILITY", "LD_PRELOAD", "MALLOC_CONF")}
    return {
        "torch": torch.__version__, "numpy": np.__version__,
        "blas_info": blas[0] if blas else "?", "openblas_core": openblas_core(),
        "onednn": dnnl[0] if dnnl else "?", "cpu_capability": cap[0] if cap else "?",
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "blas_threads": BLAS_THREADS, "pool": ARGS.pool, "allocator": allocator(), "env": env,
    }


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


STATS = {}


def timed(fn, warmup, steps):
    """Wall times of `steps` calls after `warmup` calls. STATS gets the minor
    page faults, the median process CPU time (all threads) and the median CPU
    time of the main thread per timed call. CPU times are much less sensitive
    than wall time to other processes on a shared machine; with
    OMP_WAIT_POLICY=PASSIVE (idle OpenMP workers sleep) the main thread's CPU
    time approximates the step's wall time on a quiet machine."""
    for _ in range(warmup):
        fn()
    ts, cpu, main = [], [], []
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        c0 = time.process_time()
        m0 = time.thread_time()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        main.append(time.thread_time() - m0)
        cpu.append(time.process_time() - c0)
    STATS["faults_per_step"] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // steps
    STATS["cpu_ms"] = round(1e3 * statistics.median(cpu), 1)
    STATS["main_cpu_ms"] = round(1e3 * statistics.median(main), 1)
    return ts


def run_pretrain(kind, log):
    gen = torch.Generator().manual_seed(ARGS.seed)
    torch.manual_seed(ARGS.seed)
    if kind == "cnn":
        L, B, V = 1024, ARGS.batch or 256, 2
    else:
        L, B, V = 4020, ARGS.batch or 64, 4
        if B % 8:
            sys.exit("convsc batch must be divisible by the 8 BN splits")
    N = 4 * B
    data = make_spectra(N, L, gen)
    ext = torch.randint(0, 5, (N,), generator=gen)
    step = PretrainStep(kind, L, B, V, gen)
    log(f"model: {kind} L={L} B={B} V={V} queue=128x4096 T=0.1 m=0.99 "
        f"params f_q={sum(p.numel() for p in step.qp)} "
        f"optim=SGD(lr 0.15, mom 0.9, wd 1e-4, foreach)")
    if ARGS.check_aug:
        err = check_augmenter(step.aug, data, gen, ARGS.check_aug)
        log(f"check: batched augmentation vs per-spectrum scipy CubicSpline + np.interp: "
            f"max|diff| = {err:.3g} (float32 output)")
    log(f"check: ReLU+MaxPool1d(2) pool={ARGS.pool} vs F.max_pool1d(F.relu(x), 2), values and "
        f"gradients with ties: max|diff| = {check_pool(gen):.3g}")
    # sanity: a MoCo loss against random keys sits near ln(Q+1)
    with torch.no_grad():
        qs = step.q(data[:B])
        kr = F.normalize(torch.randn(B, 128, generator=gen), dim=1)
        l_rand = step.moco_loss(qs, kr).item()
    log(f"sanity: ln(Q+1) = {math.log(4097):.3f}; L_moco(one direction, random keys) = "
        f"{l_rand:.3f}; ln 2 = {math.log(2):.3f}")
    it = [0]

    def one(report=None):
        i = it[0] % (N // B)
        it[0] += 1
        step(data[i * B:(i + 1) * B], ext[i * B:(i + 1) * B], report)

    first = {}
    one(first)
    log("initial losses (step 1): " + " ".join(f"{k}={v:.4f}" for k, v in first.items())
        + "  [L12/L21 start low: f_k = f_q at init, so k ~ q; L_inter ~ ln 2]")
    step.t_aug.clear()
    ts = timed(one, max(ARGS.warmup - 1, 0), ARGS.steps)
    last = {}
    one(last)
    log("losses after the timed steps: " + " ".join(f"{k}={v:.4f}" for k, v in last.items()))
    aug_ms = 1e3 * statistics.median(step.t_aug[-ARGS.steps - 1:])
    return B, ts, {"L": L, "B": B, "V": V, "aug_ms": round(aug_ms, 2),
                   "initial_losses": first, "final_losses": last}


def run_embed(kind, log):
    gen = torch.Generator().manual_seed(ARGS.seed)
    torch.manual_seed(ARGS.seed)
    L = 1024 if kind == "cnn" else 4020
    B = ARGS.batch or 256
    enc = (CNNEncoder() if kind == "cnn" else ConvSC()).eval()
    if kind == "convsc":   # non-trivial running statistics
        with torch.no_grad():
            for m in enc.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                    m.running_var.uniform_(0.5, 1.5, generator=gen)
    x = make_spectra(B, L, gen)
    log(f"model: {kind} encoder, eval mode, torch.inference_mode, L={L} B={B}, output h (128)")
    with torch.inference_mode():
        ref = enc(x)
    cands = {"eager": enc}
    if ARGS.embed_mode in ("auto", "freeze", "optimize"):
        with torch.no_grad():
            tr = torch.jit.freeze(torch.jit.trace(enc, x[:8]))
            if ARGS.embed_mode in ("auto", "freeze"):
                cands["freeze"] = tr
            if ARGS.embed_mode in ("auto", "optimize"):
                cands["optimize"] = torch.jit.optimize_for_inference(
                    torch.jit.freeze(torch.jit.trace(enc, x[:8])))
    if ARGS.embed_mode != "auto":
        cands = {ARGS.embed_mode: cands[ARGS.embed_mode]}
    best, best_t = None, None
    trial = {}
    with torch.inference_mode():
        for name, f in cands.items():
            err = (f(x) - ref).abs().max().item()
            t = statistics.median(timed(lambda: f(x), 2, 3))
            trial[name] = round(1e3 * t, 2)
            log(f"embed mode {name}: {1e3 * t:.1f} ms/batch, max|h - eager| = {err:.2g}")
            if best_t is None or t < best_t:
                best, best_t = name, t
        f = cands[best]
        log(f"chosen embed mode: {best}")
        ts = timed(lambda: f(x), ARGS.warmup, ARGS.steps)
    return B, ts, {"L": L, "B": B, "embed_mode": best, "embed_trials_ms": trial}


# ---------------------------------------------------------------------------
# Parity check against the published weights (optional)
# ---------------------------------------------------------------------------

def check_parity(d):
    import csv
    ck = os.path.join(d, "..", "specrrmoco_ckpt")
    flat = np.fromfile(os.path.join(ck, "backbone_last.f32.bin"), dtype="<f4")
    tensors = {}
    with open(os.path.join(ck, "backbone_last.f32.manifest.tsv")) as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            name, _, shape, off, cnt = row[:5]
            if not name.startswith("encoder_q."):
                continue
            shp = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
            tensors[name[len("encoder_q."):]] = torch.from_numpy(
                flat[int(off):int(off) + int(cnt)].copy()).view(shp)
    qe = QueryEncoder(ConvSC())
    e = "encoder."
    mp = {"conv1.weight": "conv1.0.weight", "conv1.bias": "conv1.0.bias",
          "bn1": "conv1.1", "conv3.weight": "conv3.0.weight", "conv3.bias": "conv3.0.bias",
          "bn3": "conv3.1", "emb.": "embeding.0.", "emb_ln.": "embeding.1.",
          "in_proj.weight": "MultiHeadAttention.in_proj_weight",
          "in_proj.bias": "MultiHeadAttention.in_proj_bias",
          "out_proj.": "MultiHeadAttention.out_proj.", "cam_gamma": "C_Attention_F.gamma",
          "ln.": "LayerNorm.", "dec.": "dec_conv3.0.", "bn_dec": "dec_conv3.1"}
    sd, src_of = {}, {}
    for k in qe.state_dict():
        if k.startswith("head."):
            src = k.replace("fc1", "0").replace("fc2", "2")
        else:
            sub = k[len(e):]
            src = None
            for a, b in mp.items():
                if sub.startswith(a):
                    src = "encoder." + b + sub[len(a):]
                    break
        src_of[k] = src
        sd[k] = tensors[src].reshape(qe.state_dict()[k].shape).to(qe.state_dict()[k].dtype)
    qe.load_state_dict(sd)
    x = torch.from_numpy(np.fromfile(os.path.join(d, "input_8x4020.f32"), dtype="<f4")).view(8, 4020)
    feat = torch.from_numpy(np.fromfile(os.path.join(d, "eval_feature_8x128.f32"), dtype="<f4")).view(8, 128)
    proj = torch.from_numpy(np.fromfile(os.path.join(d, "eval_projection_8x128.f32"), dtype="<f4")).view(8, 128)
    qe.eval()
    with torch.no_grad():
        h = qe.encoder(x)
        z = qe.head(h)
    e_h, e_z = (h - feat).abs().max().item(), (z - proj).abs().max().item()
    print(f"parity eval: max|feature - ref| = {e_h:.3g} (tol 3e-5), "
          f"max|projection - ref| = {e_z:.3g} (tol 1e-6)")
    ok = e_h <= 3e-5 and e_z <= 1e-6
    try:
        import h5py
    except ImportError:
        print("parity train: h5py not available, skipped")
        return ok
    with h5py.File(os.path.join(d, "parity_train_expected.h5"), "r") as fh:
        g = fh["batch16"]
        xs = torch.from_numpy(g["spectra"][...])
        ref = torch.from_numpy(g["feature"][...])
        R = torch.from_numpy(g["R"][...])
        G = float(g.attrs["G"])
        grads = {k: torch.from_numpy(g["grad/encoder_q." + src_of[k]][...])
                 for k, p in qe.named_parameters() if k.startswith("encoder.")}
    qe.train()
    h = qe.encoder(xs)
    (h * R).sum().backward()
    e_f = (h - ref).abs().max().item()
    zero_grad = {"encoder.conv1.bias", "encoder.conv3.bias", "encoder.dec.bias",
                 "encoder.out_proj.bias"}   # exactly zero in exact arithmetic
    worst = {True: (0.0, ""), False: (0.0, "")}
    for k, p in qe.named_parameters():
        if k not in grads:
            continue
        diff = (p.grad - grads[k].view_as(p.grad)).abs().flatten()
        if k == "encoder.bn1.weight":
            diff[55] = 0.0   # float32 tie-dominated entry (see the fixture README)
        z = k in zero_grad
        if diff.max().item() / G > worst[z][0]:
            worst[z] = (diff.max().item() / G, k)
    print(f"parity train (batch16, interleaved split BN, pool={ARGS.pool}): max|feature - ref| = "
          f"{e_f:.3g} (tol 1e-5); gradients max|diff|/G = {worst[False][0]:.3g} "
          f"({worst[False][1]}; tol 2e-5), exactly-zero biases {worst[True][0]:.3g} "
          f"({worst[True][1]}; tol 3e-4)")
    return ok and e_f <= 1e-5 and worst[False][0] <= 2e-5 and worst[True][0] <= 3e-4


def main():
    if ARGS.check_parity:
        sys.exit(0 if check_parity(ARGS.check_parity) else 1)
    lines = []

    def log(s):
        lines.append(s)
        if not ARGS.json:
            print("# " + s, flush=True)

    st = settings()
    log(f"load average at start: {os.getloadavg()[0]:.2f} (machine has {os.cpu_count()} CPUs)")
    log("settings: " + " ".join(f"{k}={v}" for k, v in st.items() if k != "env"))
    log("env: " + " ".join(f"{k}={v}" for k, v in st["env"].items()))
    if st["env"]["OPENBLAS_CORETYPE"] != "(unset)":
        log("WARNING: OPENBLAS_CORETYPE is set; run under env -u OPENBLAS_CORETYPE")
    kind, what = ARGS.workload.split("_")
    B, ts, extra = (run_pretrain if what == "pretrain" else run_embed)(kind, log)
    med = statistics.median(ts)
    res = {"workload": ARGS.workload, "threads": ARGS.threads,
           "spectra_s": round(B / med, 1), "step_ms": round(1e3 * med, 1),
           "peak_rss_mb": round(peak_rss_mb(), 1),
           "step_ms_min": round(1e3 * min(ts), 1), "step_ms_max": round(1e3 * max(ts), 1),
           "steps": len(ts), "cpu_ms": STATS["cpu_ms"], "main_cpu_ms": STATS["main_cpu_ms"],
           "faults_per_step": STATS["faults_per_step"],
           "loadavg": "/".join(f"{v:.1f}" for v in os.getloadavg())}
    if ARGS.json:
        import json
        print(json.dumps({**res, **extra, "settings": st, "log": lines}))
    else:
        print(" ".join(f"{k}={v}" for k, v in res.items())
              + (f" aug_ms={extra['aug_ms']}" if "aug_ms" in extra else "")
              + (f" embed_mode={extra['embed_mode']}" if "embed_mode" in extra else ""))


if __name__ == "__main__":
    main()
