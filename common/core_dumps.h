// common/core_dumps.h: keeping API keys out of core files.
//
// sgsyncd and sgsyncctl hold MISP API keys in memory; a core file of either (written by the kernel
// to the working directory, or collected by systemd-coredump or apport) would carry them to
// wherever crash reports go. Both programs call ForbidCoreDumps() first thing, which makes the
// process non-dumpable (prctl PR_SET_DUMPABLE 0: no core file, and no ptrace by other users).
// A developer who needs a core sets SGSYNC_ALLOW_CORE_DUMPS=1 and accepts that it holds the keys.
#pragma once

namespace sgsync {

// Returns false, with errno set, when the kernel refused (the process stays as it was).
bool ForbidCoreDumps();

}  // namespace sgsync
