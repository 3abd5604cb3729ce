# ring pinning off the loop (branch, working tree) against main (.trees/main), one command
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null
R=$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; echo "pin: $(git rev-parse HEAD 2>/dev/null || echo 3efb36f)"; echo "main: $(cat .trees/main/COMMIT)"; } > $OUT/card.txt
export PYTHONPATH=$SITE:$R
timeout 170 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_cuda_engine.py test/test_burst_benches.py test/test_cuda_launches.py test/test_launch_calls.py > $OUT/pytest.txt 2>&1
tail -1 $OUT/pytest.txt
tree() { [ $1 = main ] && echo $R/.trees/main || echo $R; }
cold() {  # version count rep
  (cd $(tree $1) && PYTHONPATH=$SITE:$PWD timeout 90 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras $2 --policies s3dnn --seconds 2 --warmup-s 0 --overload 0 --out $OUT/cold-$1-$2-$3 > $OUT/cold-$1-$2-$3.txt 2>&1)
  echo "cold $1 $2 #$3: $(grep -E '^ *s3dnn +[0-9]+ +gpu' $OUT/cold-$1-$2-$3.txt)"
}
for rep in 1 2; do for v in main pin; do cold $v 640 $rep; done; done
for v in pin main; do cold $v 192 1; done
for v in main pin; do
  (cd $(tree $v) && PYTHONPATH=$SITE:$PWD timeout 60 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --out $OUT/wp-$v > $OUT/wp-$v.txt 2>&1); echo "wp $v: $(head -c 400 $OUT/wp-$v.txt)"
done
for v in pin main; do
  (cd $(tree $v) && PYTHONPATH=$SITE:$PWD timeout 150 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras 48,192,384,640,704 --policies s3dnn --seconds 3 --warmup-s 1 --overload 0 --out $OUT/steady-$v > $OUT/steady-$v.txt 2>&1)
  echo "steady $v:"; grep -E '^ *s3dnn +[0-9]+ +gpu' $OUT/steady-$v.txt
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
