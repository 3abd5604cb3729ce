# how to cut a burst: even and uneven chains, wave-aware sizes (21-24 frames) against 16 and 32
python3 -m pip install -q --no-index --no-deps --no-compile --target $SITE .whl/*.whl 2>/dev/null
export PYTHONPATH=$SITE:$PWD
{ date -u; nvidia-smi; echo "cores: $(nproc)"; echo "code: $(cat .trees/main/COMMIT)"; } > $OUT/card.txt
for rep in 1 2; do
timeout 200 python3 bench/burst_chains.py --frames 64,48,32 --chains 1,2,3,4 --cuts 22+21+21,21+21+22,24+24+16,16+24+24,24+20+20,16+16+16+16,24+24,20+20+8,16+16+16,12+12+12+12,11+11+10,21+11 --repeats 30 --out $OUT/bc$rep > $OUT/bc$rep.txt 2>&1
cat $OUT/bc$rep.txt | grep -v '^wrote'
done
cd $OUT && tar czf $TMPDIR/all.tgz . && mv $TMPDIR/all.tgz $OUT/all.tgz
