/* libFuzzer driver: ./build.sh fuzz (the body is fuzz_pricing_file in targets.h, which #includes ../../bifrost.c). */
#include "targets.h"

FUZZ_DRIVER(fuzz_pricing_file)
