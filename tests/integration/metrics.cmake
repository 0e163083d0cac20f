# Metrics and health endpoints (issue 6): /metrics of the scheduler and the
# worker after a known workload (every line checked against the exposition
# format, every counter exact), and /readyz across Redis and PostgreSQL
# outages. Included by CMakeLists.txt in this folder, which defines the
# `stack` fixture and baton_integration_test(). test_readyz stops servers,
# so it brings up a stack of its own (lib.sh use_own_stack).
foreach(t test_metrics test_readyz)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
