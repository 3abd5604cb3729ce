# on the CPU machine: main (b9b2c41) against branch read-pace (4a4f601), exported with
# `python3 bench/alternate.py --export REV FOLDER`; $COSTS a copy of bench/results/costs-nvidia-h200.json
for c in 128 256 384; do
  python3 bench/alternate.py --before .trees/a --after .trees/b --rounds 2 --out bench/results/read-pace-cpu/c$c -- \
      python3 bench/worker_profile.py --engine timed --cost-table $COSTS --cameras $c --seconds 3 --out {out}
done
