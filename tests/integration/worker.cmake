# Workers (issue 4): claim, run, finish against the stack.
foreach(t test_worker_order test_worker_weights test_worker_retries test_worker_commands test_cancel_running
          test_worker_idle_latency test_worker_example test_worker_builtins)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
# Task contract caps (issue 13): rejected over the cap, saturating deadline.
baton_integration_test(test_task_caps ${CMAKE_CURRENT_SOURCE_DIR}/test_task_caps.sh)
