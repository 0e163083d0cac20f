# Migrations against the stack's PostgreSQL: the runner (Check) and the CLI.
add_executable(test_migrate test_migrate.c)
target_link_libraries(test_migrate PRIVATE baton_common PkgConfig::CHECK)
baton_integration_test(test_migrate
  ${CMAKE_CURRENT_SOURCE_DIR}/with_stack.sh $<TARGET_FILE:test_migrate>)
baton_integration_test(test_batonctl_migrate
  ${CMAKE_CURRENT_SOURCE_DIR}/with_stack.sh
  ${CMAKE_CURRENT_SOURCE_DIR}/test_batonctl_migrate.sh $<TARGET_FILE:batonctl>)
