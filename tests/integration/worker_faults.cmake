# Worker faults (guarantees 1, 3, 7, 8): timeouts and killed programs,
# fencing of a frozen worker, SIGKILL mid-run, graceful and hard stops.
baton_integration_test(test_worker_timeout ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_timeout.sh)
baton_integration_test(test_worker_fencing ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_fencing.sh)
baton_integration_test(test_worker_kill9 ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_kill9.sh)
baton_integration_test(test_worker_graceful ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_graceful.sh)
baton_integration_test(test_worker_hard_stop ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_hard_stop.sh)
# Command handlers: their whole process tree is killed (setsid, double
# fork), and they get no secret and no descriptor of the worker.
baton_integration_test(test_worker_tree_kill ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_tree_kill.sh)
baton_integration_test(test_worker_command_env ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_command_env.sh)
# A worker that is PID 1 reaps orphans (needs a PID namespace: 77 = skipped).
baton_integration_test(test_worker_pid1 ${CMAKE_CURRENT_SOURCE_DIR}/test_worker_pid1.sh)
set_tests_properties(integration.test_worker_pid1 PROPERTIES SKIP_RETURN_CODE 77)
