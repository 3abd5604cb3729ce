# does the worker's host cost per frame at 384/640 cameras fall when it has a core (and its sibling) to itself?
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null; export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi -L; echo "cores: $(nproc)"; echo "code: $(git rev-parse --short HEAD 2>/dev/null)"; lscpu; lscpu -e; } > $OUT/card.txt
W=$(cat /sys/devices/system/cpu/cpu0/topology/thread_siblings_list)
echo "worker cpu 0, its core's threads: $W" | tee -a $OUT/card.txt
REST=$(python3 -c "
import os
sib=set()
for part in '$W'.split(','):
    a,_,b=part.partition('-'); sib.update(range(int(a),int(b or a)+1))
print(','.join(str(c) for c in sorted(os.sched_getaffinity(0)) if c not in sib))")
echo "others: $REST" | tee -a $OUT/card.txt
pinloop() { while true; do for p in $(pgrep -f 's3dnn_ros.worker.process'); do taskset -acp 0 $p >/dev/null 2>&1; done; sleep 0.1; done; }
for round in 1 2; do
  for mode in free pinned; do
    if [ $mode = pinned ]; then pinloop & PL=$!; PRE="taskset -c $REST"; else PRE=""; fi
    timeout 140 $PRE python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 384,640 --policies s3dnn --seconds 3 --warmup-s 1 --out $OUT/$mode-$round > $OUT/$mode-$round.txt 2>&1
    [ $mode = pinned ] && kill $PL
    echo "== $mode $round"; python3 -c "
import json,glob
for f in glob.glob('$OUT/$mode-$round/*.json'):
    for r in json.load(open(f))['rows']:
        if r['source']=='gpu': print(r['cameras'], r['miss_ratio'], 'host/frame', r['host_us_per_frame'], 'host/kernel', r['host_us_per_kernel'], 'busy', r['gpu_busy'], 'batch', r['mean_batch'], 'unmetered', r.get('unmetered_us_per_frame'))"
  done
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
