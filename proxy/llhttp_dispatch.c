/* llhttp's parser, built twice on x86-64 (see CMakeLists.txt): the copy with
 * SSE4.2 where the CPU has it, the plain one elsewhere, chosen at the first
 * parse. (Not a GNU indirect function: its resolver runs before relocations,
 * where sanitizer-instrumented code cannot.) */

#include <stddef.h>

#include "llhttp.h"

typedef int (*llhttp_execute_fn)(llhttp__internal_t* state, const char* p, const char* endp);

int llhttp__plain_execute(llhttp__internal_t* state, const char* p, const char* endp);
int llhttp__sse42_execute(llhttp__internal_t* state, const char* p, const char* endp);

/* Every worker thread may choose at once; they all choose the same. */
static llhttp_execute_fn chosen_execute;

int llhttp__internal_execute(llhttp__internal_t* state, const char* p, const char* endp) {
  llhttp_execute_fn execute = __atomic_load_n(&chosen_execute, __ATOMIC_RELAXED);
  if (execute == NULL) {
    __builtin_cpu_init();
    execute = __builtin_cpu_supports("sse4.2") ? llhttp__sse42_execute : llhttp__plain_execute;
    __atomic_store_n(&chosen_execute, execute, __ATOMIC_RELAXED);
  }
  return execute(state, p, endp);
}
