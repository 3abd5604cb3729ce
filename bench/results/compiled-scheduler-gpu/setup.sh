# sourced from the repository root on the GPU host: the ROS prefix, pycuda; the checkout's compiled modules
K=$PWD/.gpuk; T0=$(date +%s)
export P=$TMPDIR/pfx SITE=$TMPDIR/mypyc/site
[ -d $P/lib ] || tar xJf $K/pfx.tar.xz -C /tmp
[ -d $P/lib/python3.12/site-packages/pycuda ] || python3 -m pip install -q --no-index --no-deps --no-compile --prefix $P $K/wheels/*.whl 2>/dev/null
[ -d $SITE/mypyc ] || [ ! -f $K/mypyc.tar.xz ] || { mkdir -p $TMPDIR/mypyc && tar xJf $K/mypyc.tar.xz -C $TMPDIR/mypyc; }
export PYTHONPATH=$PWD:$P/lib/python3.12/site-packages:$SITE PATH=$P/bin:$PATH AMENT_PREFIX_PATH=$P _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export LD_LIBRARY_PATH=$P/lib:$P/lib64:$(ls -d $P/lib/python3.12/site-packages/ros_*.libs | tr '\n' ':')$LD_LIBRARY_PATH
echo "unpacked: $(( $(date +%s) - T0 )) s"
# prebuilt compiled modules (.gpuk/prebuild.sh) for this checkout and for trees, made newer than their sources
[ -d $K/so/work ] && (cd $K/so/work && find . -name '*.so' | tar cf - -T -) | tar xf - -C $PWD
find s3dnn_ros $K/trees -name '*.cpython-312-*.so' -exec touch {} + 2>/dev/null
B=$(python3 -c 'from s3dnn_ros import native; print(native.build())' 2>/dev/null)
if [ "$B" != compiled ]; then
  S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace > $OUT/build.txt 2>&1 || { tail -20 $OUT/build.txt; }
  B=$(python3 -c 'from s3dnn_ros import native; print(native.build())' 2>&1 | tail -1)
fi
{ date -u; nvidia-smi; echo "cores: $(nproc)"; echo "code: $(cat $K/HEAD)"; echo "build: $B"; python3 --version; } > $OUT/card.txt
echo "setup: $(( $(date +%s) - T0 )) s; build: $B; $(nvidia-smi --query-gpu=name --format=csv,noheader)"
