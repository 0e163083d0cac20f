# Worker faults (guarantees 1, 3, 7, 8): timeouts and killed programs,
# fencing of a frozen worker, SIGKILL mid-run, graceful and hard stops.
baton_integration_test(test_worker_timeout ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_timeout.sh)
baton_integration_test(test_worker_fencing ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_fencing.sh)
baton_integration_test(test_worker_kill9 ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_kill9.sh)
baton_integration_test(test_worker_graceful ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_graceful.sh)
baton_integration_test(test_worker_hard_stop ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_hard_stop.sh)
