# 2-core x86_64 CPU machine (Intel Xeon Processor, KVM, no GPU), 2026-12-05, Python 3.11.
# "before": main at ba1aac6, exported and built in place; "after": the branch notice-ring at
# c9605f3 (notice-ring.diff against main), built in place (make build); scheduler compiled in both.
#   python3 bench/alternate.py --export main trees/main
#   (cd trees/main && S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace)
export TABLE=$PWD/bench/results/costs-nvidia-h200.json
python3 bench/alternate.py --before trees/main --rounds 2 --out notice-ring-cpu/capacity -- \
    python3 -m s3dnn_ros.tools.bench --engine timed --cost-table "$TABLE" --sections capacity \
    --cameras 192,384,512 --policies s3dnn --seconds 3 --overload 0 --out {out}
# The read's own cost, each tree with the serving loop timing its read of the notices when it
# brought any (a few lines added to worker/process.py, not kept), twice each, same machine:
#   python3 -m s3dnn_ros.tools.bench --engine timed --cost-table "$TABLE" --sections capacity \
#       --cameras 384 --policies s3dnn --seconds 3 --overload 0
