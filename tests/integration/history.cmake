# History (issue 5): the writer from Redis events to PostgreSQL.
foreach(t test_history_complete test_history_crash test_history_two_writers
          test_history_ack_refused test_history_orphans)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
