// libFuzzer harness for the C side of the wire: protobuf-c's unpacker over fi.v1.Envelope (Sources/CMessages),
// built with clang -fsanitize=fuzzer,address together with an instrumented protobuf-c runtime of the version
// Debian ships (Fuzz/c/protobuf-c-1.4.1). What unpacks must pack to bytes that unpack again, and free cleanly.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fi.pb-c.h"

// Does `m` or any message inside it keep an unknown field with number 0 (the quirk below)?
static int has_field_zero(const ProtobufCMessage *m) {
    if (m == NULL) return 0;
    for (unsigned i = 0; i < m->n_unknown_fields; i++) if (m->unknown_fields[i].tag == 0) return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++) if (has_field_zero(items[k])) return 1;
        } else {
            // A oneof member is set only when its case names it (the pointer shares a union with the others).
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
            if (has_field_zero(*(ProtobufCMessage *const *)(base + f->offset))) return 1;
        }
    }
    return 0;
}

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
    // (no service re-packs a decoded message), at any depth. Everything else must unpack again after packing.
    int field_zero = has_field_zero(&env->base);
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
