# Every third-party library comes through pkg-config; a missing one stops configure naming its Debian package.
find_package(PkgConfig REQUIRED)

# osvi_pkg(<target-suffix> <pkg-config module> <debian package>) defines PkgConfig::<target-suffix>.
function(osvi_pkg name module debian)
  pkg_check_modules(${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "osvi-edge needs '${module}' (pkg-config) — install it with: apt-get install ${debian}")
  endif()
endfunction()

osvi_pkg(systemd   "libsystemd>=247"       libsystemd-dev)
osvi_pkg(cjson     "libcjson>=1.7.14"      libcjson-dev)
osvi_pkg(sqlite3   "sqlite3>=3.35"         libsqlite3-dev)
osvi_pkg(mhd       "libmicrohttpd>=0.9.75" libmicrohttpd-dev)
osvi_pkg(alsa      "alsa>=1.2"             libasound2-dev)
osvi_pkg(opus      "opus>=1.3"             libopus-dev)
osvi_pkg(speexdsp  "speexdsp>=1.2"         libspeexdsp-dev)
osvi_pkg(mosquitto "libmosquitto>=2.0"     libmosquitto-dev)
osvi_pkg(curl      "libcurl>=7.88"         libcurl4-openssl-dev)

if(OSVI_BUILD_TESTS)
  osvi_pkg(gtest "gtest_main>=1.12" libgtest-dev)
  osvi_pkg(gmock "gmock>=1.12" libgmock-dev)
endif()
if(OSVI_BUILD_BENCH)
  osvi_pkg(benchmark "benchmark>=1.7" libbenchmark-dev)
endif()
