# Issue 13, configuration that must not hurt: no error message shows a
# password (Redis URL, PostgreSQL DSN, Kafka property values), and the
# daemons refuse a Redis that may lose what it acknowledged unless told
# --redis-durability=relaxed. Included by CMakeLists.txt in this folder.
foreach(t test_config_secrets test_redis_durability)
  baton_integration_test(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
endforeach()
