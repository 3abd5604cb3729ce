# the same commit interpreted (before) and with its scheduler modules compiled by mypyc (after: `S3DNN_COMPILE=1 python3 setup.py build_ext --inplace` in the exported tree), alternated
python3 bench/alternate.py --export HEAD .trees/mx-i; python3 bench/alternate.py --export HEAD .trees/mx-c
(cd .trees/mx-c && S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace)
for n in 64 192 384 640; do
  python3 bench/alternate.py --before .trees/mx-i --after .trees/mx-c --rounds 2 --out $OUT/cameras-$n -- \
      python3 bench/worker_profile.py --engine timed --cost-table $PWD/bench/results/costs-nvidia-h200.json --cameras $n --seconds 3 --out {out}
done
