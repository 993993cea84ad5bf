// The one source of osvi_test_pch, the target that builds the test files' shared precompiled header.
