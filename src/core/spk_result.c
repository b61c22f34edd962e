/* spk_result.c - lookups over the result-code table of spk_result.h. */
#include "spk_result.h"

static const spk_result_info table[] = {
#define SPK__RESULT_ROW(name, code, retry, pycls, msg) \
  {code, retry, #name, #pycls, msg},
    SPK_RESULT_MAP(SPK__RESULT_ROW)
#undef SPK__RESULT_ROW
};

#define N_ROWS ((int)(sizeof table / sizeof table[0]))

const spk_result_info *spk_result_table(int *count) {
  *count = N_ROWS;
  return table;
}

static const spk_result_info *find(int code) {
  for (int i = 0; i < N_ROWS; i++)
    if (table[i].code == code) return &table[i];
  return 0;
}

const char *spk_result_name(int code) {
  const spk_result_info *r = find(code);
  return r ? r->name : "UNKNOWN";
}

const char *spk_result_message(int code) {
  const spk_result_info *r = find(code);
  return r ? r->message : "unknown result code";
}

int spk_result_retryable(int code) {
  const spk_result_info *r = find(code);
  return r ? r->retryable : 0;
}
