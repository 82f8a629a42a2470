/* libFuzzer driver: ./build.sh fuzz (the body is fuzz_http_response in targets.h, which #includes ../../bifrost.c). */
#include "targets.h"

FUZZ_DRIVER(fuzz_http_response)
