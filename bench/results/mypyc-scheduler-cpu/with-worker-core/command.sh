# four modules compiled (before: main's native.COMPILED at the commit) against five (after: the same tree with s3dnn_ros.worker.core added to native.COMPILED), both built with S3DNN_COMPILE=1, alternated three times
python3 bench/alternate.py --export HEAD .trees/m4; python3 bench/alternate.py --export HEAD .trees/m5
# in .trees/m5/s3dnn_ros/native.py: 's3dnn_ros.worker.core' appended to COMPILED
for t in m4 m5; do (cd .trees/$t && S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace); done
for n in 192 384; do
  python3 bench/alternate.py --before .trees/m4 --after .trees/m5 --rounds 3 --out $OUT/cameras-$n -- \
      python3 bench/worker_profile.py --engine timed --cost-table $PWD/bench/results/costs-nvidia-h200.json --cameras $n --seconds 3 --out {out}
done
