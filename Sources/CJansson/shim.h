#ifndef SPLICEGATE_CJANSSON_SHIM_H
#define SPLICEGATE_CJANSSON_SHIM_H
#include <jansson.h>

/* jansson's type tests and reference counting are macros or inline
   functions Swift cannot always import; these wrappers give it callables. */
static inline json_type sg_json_typeof(const json_t *j) { return json_typeof(j); }
static inline void sg_json_decref(json_t *j) { json_decref(j); }
static inline json_t *sg_json_incref(json_t *j) { return json_incref(j); }

/* The flag macros, as typed constants. */
static const size_t SG_JSON_REJECT_DUPLICATES = JSON_REJECT_DUPLICATES;
static const size_t SG_JSON_DECODE_ANY = JSON_DECODE_ANY;
static const size_t SG_JSON_ALLOW_NUL = JSON_ALLOW_NUL;
static const size_t SG_JSON_COMPACT = JSON_COMPACT;
static const size_t SG_JSON_PRESERVE_ORDER = JSON_PRESERVE_ORDER;
static const size_t SG_JSON_ENCODE_ANY = JSON_ENCODE_ANY;
/* 15 significant digits: enough for any figure we report, and 0.1 stays "0.1". */
static const size_t SG_JSON_REAL_PRECISION_15 = JSON_REAL_PRECISION(15);

#endif
