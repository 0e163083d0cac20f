# Fault injection (guarantees 1, 2, 9): ingest across Redis outages. The test
# stops and restarts servers with deploy/stack.sh stop/start, so it brings up
# a stack of its own instead of using the shared fixture's.
baton_integration_test(test_ingest_redis_outage
  ${CMAKE_CURRENT_SOURCE_DIR}/test_ingest_redis_outage.sh)
foreach(t test_scheduler_script_flush test_history_pg_outage test_scheduler_backpressure)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
