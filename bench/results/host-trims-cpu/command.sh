# 2-core x86_64 CPU machine (Intel Xeon Processor, KVM, no GPU), 2026-12-05, Python 3.11, mypy 2.4.1.
# "before": the tree of 58dd787 exported and built in place; "after": the working tree at aa000ea,
# built the same way (make build); both with the scheduler's per-frame modules compiled.
#   python3 bench/alternate.py --export 58dd787 trees/before
#   (cd trees/before && S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace)
export TABLE=$PWD/bench/results/costs-nvidia-h200.json
python3 bench/alternate.py --before trees/before --rounds 3 --out host-trims-cpu/worker-loop -- \
    bash -c 'for n in 192 384 640; do python3 bench/worker_profile.py --engine timed --cost-table "$TABLE" --cameras $n --seconds 3 --call-times --out {out}/$n; done'
python3 bench/alternate.py --before trees/before --rounds 2 --out host-trims-cpu/capacity -- \
    python3 -m s3dnn_ros.tools.bench --engine timed --cost-table "$TABLE" --sections capacity \
    --cameras 192,384,512 --policies s3dnn --seconds 3 --overload 0 --out {out}
# The leak alone at 1.5x the stand-in's knee: the commit before the fix (bdf432a) against the fix
# (d1e6db0), each exported and built in place as above:
python3 bench/alternate.py --before trees/bdf432a --after trees/d1e6db0 --rounds 2 \
    --out host-trims-cpu/overload-leak -- \
    python3 -m s3dnn_ros.tools.bench --engine timed --cost-table "$TABLE" --sections capacity \
    --cameras 256,384 --policies s3dnn --seconds 5 --overload 1.5 --out {out}
