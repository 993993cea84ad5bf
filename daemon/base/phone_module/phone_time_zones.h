/* The phone-prefix → time-zone table that cmake/gen_phone_time_zones.py generates into the build tree. */
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace osvi_phone_tz {

/* One prefix: `length` digits of value `value` ("1212" = {1212, 4}); its zones are kLists[list ..
 * list+count), indices into kNameOffsets. count 0: the data says "Etc/Unknown", no zone. */
struct Entry {
  uint32_t value;
  uint8_t length;
  uint8_t count;
  uint16_t list;
};

extern const int kLongestPrefix;
extern const size_t kLongestJoined; /* the longest list, '\n'-joined, without the NUL */
extern const size_t kEntryCount;
extern const char kNamePool[];
extern const uint16_t kNameOffsets[];
extern const uint16_t kLists[];
extern const Entry kEntries[];

}  // namespace osvi_phone_tz
