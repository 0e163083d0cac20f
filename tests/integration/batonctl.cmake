# batonctl (issue: operator CLI): every subcommand against the stack, with a
# scheduler running the history writer and a worker.
foreach(t test_batonctl)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
