# on the CPU machine: 45192f9 (.trees/a: DEQUEUEs metered) against e8ed4db (.trees/b: no DEQUEUE
# after frames that only join a hold), exported with `python3 bench/alternate.py --export REV
# FOLDER`; $COSTS a copy of bench/results/costs-nvidia-h200.json
for c in 128 256 384; do
  python3 bench/alternate.py --before .trees/a --after .trees/b --rounds 3 --out bench/results/hold-dequeues-cpu/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
# then b*'s per-batch costs kept per host costs: HEAD (9464cb3) against the working tree that became
# cca3ed7 (the diff of that commit), from the checkout
for c in 256 384; do
  python3 bench/alternate.py --before HEAD --rounds 3 --out bench/results/hold-dequeues-cpu/b-star/c$c -- \
      python3 bench/worker_profile.py --engine timed --cameras $c --seconds 3 --cost-table $COSTS --out {out}
done
# then the day's host changes together: 3f3d36d (.trees/start) against e14d776 (.trees/now)
for c in 128 256 384; do
  python3 bench/alternate.py --before .trees/start --after .trees/now --rounds 3 --out bench/results/hold-dequeues-cpu/total/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
