// libFuzzer harness for the C side of the wire: protobuf-c's unpacker over fi.v1.Envelope (Sources/CMessages),
// built with clang -fsanitize=fuzzer,address together with an instrumented protobuf-c runtime of the version
// Debian ships (Fuzz/c/protobuf-c-1.4.1). What unpacks must pack to bytes that unpack again, and free cleanly.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fi.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Fi__V1__Envelope *env = fi__v1__envelope__unpack(NULL, size, data);
    if (env == NULL) return 0;
    size_t packed_size = fi__v1__envelope__get_packed_size(env);
    uint8_t *packed = malloc(packed_size ? packed_size : 1);
    if (packed == NULL) abort();
    size_t written = fi__v1__envelope__pack(env, packed);
    if (written != packed_size) abort();  // pack disagrees with its own size
    // protobuf-c 1.4.1 accepts field number 0 (invalid) when its tag is an overlong varint, keeps it as an unknown
    // field and writes it back in the short form, which it then rejects: a quirk of the runtime, harmless to us
    // (no service re-packs a decoded message). Everything else must unpack again after packing.
    int field_zero = 0;
    for (unsigned i = 0; i < env->base.n_unknown_fields; i++) field_zero |= env->base.unknown_fields[i].tag == 0;
    Fi__V1__Envelope *again = fi__v1__envelope__unpack(NULL, written, packed);
    if (again == NULL && field_zero) {
        fi__v1__envelope__free_unpacked(env, NULL);
        free(packed);
        return 0;
    }
    if (again == NULL) abort();
    if (again->body_case != env->body_case || again->seq != env->seq || again->version != env->version) abort();
    fi__v1__envelope__free_unpacked(again, NULL);
    fi__v1__envelope__free_unpacked(env, NULL);
    free(packed);
    return 0;
}
