"""The score columns of docs/results.md's count-inversions table: python3 scores_by_batch.py RUNS_FOLDER."""
import json
import random
import statistics as st
import sys

root = sys.argv[1]
rows = {}
for strat in ["best-of-k", "multi-turn", "evolve", "sdpo", "sdpo-evolve"]:
    runs = []
    for s in range(4):
        d = f"{root}/count-inversions/{strat}/seed{s}"
        a = [json.loads(l) for l in open(f"{d}/attempts.jsonl")]
        runs.append(a)
    solved = sum(any(x["passed"] for x in a) for a in runs)
    best = [max(x.get("score", 0) for x in a) for a in runs]
    mean = st.mean(x.get("score", 0) for a in runs for x in a)
    by_batch = [st.mean(x.get("score", 0) for a in runs for x in a[i*4:(i+1)*4]) for i in range(3)]
    verd = {}
    for a in runs:
        for x in a:
            verd[x.get("verdict")] = verd.get(x.get("verdict"), 0) + 1
    print(f"| {strat} | {solved}/4 | {', '.join(f'{b:.3f}' for b in best)} | {mean:.2f} | {' / '.join(f'{b:.2f}' for b in by_batch)} | {verd} |")


def later_mean(strat, s):
    a = [json.loads(l) for l in open(f"{root}/count-inversions/{strat}/seed{s}/attempts.jsonl")]
    xs = [x.get("score", 0) for x in a[4:12]]
    return st.mean(xs) if xs else float("nan")
rng = random.Random(0)
base = [later_mean("best-of-k", s) for s in range(4)]
for strat in ["multi-turn", "evolve", "sdpo", "sdpo-evolve"]:
    try:
        m = [later_mean(strat, s) for s in range(4)]
    except FileNotFoundError:
        continue
    d = [x - y for x, y in zip(m, base, strict=True)]
    boots = sorted(st.mean(rng.choice(d) for _ in d) for _ in range(5000))
    print(f"{strat}: batches 2-3 mean score {st.mean(m):.2f} vs best-of-k {st.mean(base):.2f}; paired diff {st.mean(d):+.2f} "
          f"[90% {boots[250]:+.2f}, {boots[4749]:+.2f}] per seed {['%+.2f' % x for x in d]}")
