# here, not on the GPU host: build the scheduler's compiled modules for CPython 3.12 from the tree in $1
# (default: this checkout's working tree) and keep them under .gpuk/so/$2 (default: work)
# $PY312_BIN: the bin folder of a Python 3.12 virtual environment with numpy and setuptools; mypy for 3.12
# unpacked into $TMPDIR/mypyc/site (pip download --only-binary=:all: --python-version 3.12 mypy, then unzip)
set -e
SRC=${1:-$PWD}; NAME=${2:-work}; K=$PWD/.gpuk
rm -rf $TMPDIR/prebuild && mkdir -p $TMPDIR/prebuild
(cd $SRC && tar cf - s3dnn_ros setup.py setup.cfg package.xml resource kernels 2>/dev/null) | tar xf - -C $TMPDIR/prebuild
find $TMPDIR/prebuild -name '*.so' -delete
(cd $TMPDIR/prebuild && PATH=$PY312_BIN:$PATH PYTHONPATH=$TMPDIR/mypyc/site S3DNN_COMPILE=1 python3 setup.py -q build_ext --inplace > $TMPDIR/prebuild.log 2>&1) || { tail -20 $TMPDIR/prebuild.log; exit 1; }
rm -rf $K/so/$NAME && mkdir -p $K/so/$NAME
(cd $TMPDIR/prebuild && find s3dnn_ros -name '*.cpython-312-*.so' | tar cf - -T -) | tar xf - -C $K/so/$NAME
find $K/so/$NAME -name '*.so' | sed "s|$K/||"
