# page-locking cost by how the ring's pages came to be; cold starts main vs rings made with their pages
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null
R=$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; df -h /dev/shm; echo "pre: $(cat .trees/pre/COMMIT)"; echo "main: $(cat .trees/main/COMMIT)"; } > $OUT/card.txt
export PYTHONPATH=$SITE:$R
timeout 120 python3 bench/results/ring-pinning-nvidia-h200/2-pin-cost/pin_cost.py --rings 64 --out $OUT/pin-cost > $OUT/pin-cost.txt 2>&1; cat $OUT/pin-cost.txt
cold() {  # version count rep
  (cd $R/.trees/$1 && PYTHONPATH=$SITE:$PWD timeout 90 python3 -m s3dnn_ros.tools.bench --sections capacity --cameras $2 --policies s3dnn --seconds 2 --warmup-s 0 --overload 0 --out $OUT/cold-$1-$2-$3 > $OUT/cold-$1-$2-$3.txt 2>&1)
  echo "cold $1 $2 #$3: $(grep -E '^ *s3dnn +[0-9]+ +gpu' $OUT/cold-$1-$2-$3.txt)"
}
cold main 640 1; cold pre 640 1; cold pre 192 1; cold main 192 1; cold main 640 2; cold pre 640 2; cold pre 192 2; cold main 192 2
for v in main pre; do
  (cd $R/.trees/$v && PYTHONPATH=$SITE:$PWD timeout 60 python3 bench/worker_profile.py --engine cuda --cameras 640 --seconds 3 --out $OUT/wp-$v > $OUT/wp-$v.txt 2>&1); echo "wp $v: $(head -c 330 $OUT/wp-$v.txt)"
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
