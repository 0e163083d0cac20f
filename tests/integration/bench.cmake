baton_integration_test(test_bench ${CMAKE_CURRENT_SOURCE_DIR}/test_bench.sh)
