"""In-process A/B of one maxout 240x5 training step (batch 100): the plain optimizer (one parameter at a
time) + the plain max-norm formula against the fused SGD + the row-skipping max-norm of the trainer.

    python benchmarks/train_step_ab.py THREADS ROUNDS

Each round times 20 steps of each, interleaved; prints (fastest ms, median ms, GFLOP/s of the fastest)
per variant and a 1000x784 @ 784x1200 matrix rate. The two models draw different dropout masks (one
global generator), so their weights are not compared here: tests/test_perf_equivalence.py does that.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import time, torch, sys, statistics
import torch.nn.functional as F
from tui_adv.core.models import build_model
from tui_adv.core.flops import linear_shapes, train_step_flops
torch.set_num_threads(int(sys.argv[1]))
def plain_norm(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                n = m.weight.norm(dim=1, keepdim=True).clamp_min(1e-12); m.weight.mul_(n.clamp(max=1.9365)/n)
def make(fused):
    torch.manual_seed(0); m = build_model("maxout"); m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.5, fused=fused or None, foreach=False if not fused else None)
    return m, opt
x = torch.rand(100,1,28,28); y = torch.randint(0,10,(100,))
def step(m, opt, fast):
    opt.zero_grad(set_to_none=True); F.cross_entropy(m(x), y).backward(); opt.step()
    m.apply_max_norm() if fast else plain_norm(m)
A = make(False); B = make(True)
fl = train_step_flops(linear_shapes(A[0]), 100, "clean")
res = {"plain": [], "fast": []}
for r in range(int(sys.argv[2])):
    for name, (m, o), fast in (("plain", A, False), ("fast", B, True)):
        t = time.perf_counter()
        for _ in range(20): step(m, o, fast)
        res[name].append((time.perf_counter()-t)/20)
a=torch.rand(1000,784); b=torch.rand(784,1200); ts=[]
for _ in range(10):
    t=time.perf_counter(); a@b; ts.append(time.perf_counter()-t)
mr = 2*1000*784*1200/min(ts)/1e9
print({k: (round(min(v)*1e3,3), round(statistics.median(v)*1e3,3), round(fl/min(v)/1e9,1)) for k,v in res.items()}, "matrix", round(mr,1))
