# Sourced by the scripts here: the build folder (BUILD_DIR, default build/), the job count (JOBS,
# default all cores) and ccache as the compiler launcher when it is installed.
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
