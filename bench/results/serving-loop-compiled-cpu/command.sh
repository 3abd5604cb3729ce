# 2-core x86_64 CPU machine (Intel Xeon Processor, no GPU), 2026-12-05, Python 3.11, mypy 2.4.1.
# Two copies of the working tree of f9a5810 with the serving loop moved out of
# s3dnn_ros/worker/process.py into s3dnn_ros/worker/loop.py (split.diff); in the second,
# 's3dnn_ros.worker.loop' added to s3dnn_ros/native.py COMPILED. Each built in place:
#   S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace
python3 bench/alternate.py --before trees/interpreted-loop --after trees/compiled-loop --rounds 2 \
    --out serving-loop-compiled-cpu -- \
    python3 -m s3dnn_ros.tools.bench --engine timed --cost-table bench/results/costs-nvidia-h200.json \
    --sections capacity --cameras 192,384,512 --policies s3dnn --seconds 3 --overload 0 --out {out}
