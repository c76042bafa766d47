# Shared set-up of the end-to-end benchmarks (sourced): a work directory, Garage on 127.0.0.1
# (stopped by PID and the directory removed at exit), a release build of larder, and the
# environment pointing larder at Garage.
#
#   bench_start NAME    sets $work, $larder and $bucket (s3://<test bucket>)
. scripts/lib/garage.sh

bench_start() {
    work=$(mktemp -d -t "$1.XXXXXX")
    trap 'stop_garage; rm -rf "$work"' EXIT
    ensure_garage
    start_garage
    trap 'stop_garage; rm -rf "$work"' EXIT
    cargo build --release --quiet -p larder
    larder=$PWD/target/release/larder
    export AWS_ACCESS_KEY_ID=$LARDER_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$LARDER_TEST_S3_SECRET_ACCESS_KEY
    export AWS_REGION=$LARDER_TEST_S3_REGION LARDER_ENDPOINT_URL=$LARDER_TEST_S3_ENDPOINT
    export LARDER_STATE_DIR=$work/state
    bucket=s3://$LARDER_TEST_S3_BUCKET
}
