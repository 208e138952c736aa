#include "common/core_dumps.h"

#include <sys/prctl.h>

#include <cstdlib>
#include <cstring>

namespace sgsync {

bool ForbidCoreDumps() {
  const char* allow = std::getenv("SGSYNC_ALLOW_CORE_DUMPS");
  if (allow != nullptr && std::strcmp(allow, "1") == 0) return true;
  return ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
}

}  // namespace sgsync
