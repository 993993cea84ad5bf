// The webhooks room's placeholder translation unit until its services land (webhooks.hpp).
#include "osvi/webhooks/webhooks.hpp"
