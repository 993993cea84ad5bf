// Dialer: the campaign scheduler (dialer.hpp).
#include "osvi/campaigns/dialer.hpp"
