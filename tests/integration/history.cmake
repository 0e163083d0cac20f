# History (issue 5): the writer from Redis events to PostgreSQL.

# baton-scheduler with its failure hooks (scheduler_test_hooks.c), for the
# tests that need them; never installed.
add_executable(baton-scheduler-testhooks scheduler_test_hooks.c)
target_link_libraries(baton-scheduler-testhooks PRIVATE baton_scheduler_objects)

foreach(t test_history_complete test_history_crash test_history_two_writers
          test_history_ack_refused test_history_orphans test_history_set_aside
          test_history_bad_text test_history_batch_bytes)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
