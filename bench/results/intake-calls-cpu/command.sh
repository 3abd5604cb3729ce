# on the CPU machine: main before (3f3d36d) against after (5da0ed2), exported with
# `python3 bench/alternate.py --export REV FOLDER`; $COSTS a copy of bench/results/costs-nvidia-h200.json
for c in 128 256 384 512; do
  python3 bench/alternate.py --before .trees/a --after .trees/b --rounds 3 --out bench/results/intake-calls-cpu/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
# then the outputs: 79ed195 (.trees/a) against 2fa9607 (.trees/b)
for c in 256 384; do
  python3 bench/alternate.py --before .trees/a --after .trees/b --rounds 3 --out bench/results/intake-calls-cpu/outputs/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
# then all of it: 3f3d36d (.trees/a) against 6c6637e (.trees/b)
for c in 128 256 384; do
  python3 bench/alternate.py --before .trees/a --after .trees/b --rounds 3 --out bench/results/intake-calls-cpu/total/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
