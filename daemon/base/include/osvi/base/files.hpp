// Whole-file writes that a crash or power cut can never leave half done: the one way osvid writes a file.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "osvi/result.hpp"

namespace osvi::daemon {

// Replaces `path` with exactly `content`: after a crash at any point the file holds either its old content
// (or does not exist) or the new one, never a mix or a short file. The bytes go to a fresh temporary file
// beside the target (O_EXCL, so two writers never share one), which is fsynced, renamed over the target,
// and then the directory is fsynced so the rename itself survives a power cut.
//
// `mode` is applied exactly (fchmod), not filtered by the umask: a 0600 key must never come out wider.
// Errors carry the negative errno and name `path`; on failure no temporary file is left behind (a crash
// mid-write can leave a hidden ".<name>.tmp-XXXXXXXX", which nothing reads). An error from the final
// directory fsync means the new content is in place but may not survive a power cut.
Status write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0600);

// fsyncs the directory holding `path`, so that a rename or creation of `path` survives a power cut.
Status sync_parent_directory(const std::string& path);

}  // namespace osvi::daemon
