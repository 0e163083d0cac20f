# libbaton: the library a user links to build a worker or a producer of their
# own (worker/worker.h, producer/producer.h), installed with its headers and a
# pkg-config file:
#
#   cmake --install build --prefix /opt/baton
#   cc my_worker.c $(pkg-config --cflags --libs baton)             # shared
#   cc my_worker.c $(pkg-config --cflags --static --libs baton)    # static
#
# It is the very objects of baton_common, baton_worker and baton_producer
# (the static libraries the binaries and tests link), archived once more as
# libbaton.a and linked as libbaton.so.MAJOR: no source is compiled twice.
# So those objects are position independent; -fno-semantic-interposition
# keeps gcc inlining calls between them as in a static build (nobody
# interposes libbaton's own functions).
#
# Every exported name starts with baton_ (tests/library/test_symbols.sh).
include(GNUInstallDirs)

set(BATON_LIBRARY_PARTS baton_common baton_worker baton_producer)
foreach(part ${BATON_LIBRARY_PARTS})
  set_property(TARGET ${part} PROPERTY POSITION_INDEPENDENT_CODE ON)
  set_property(TARGET ${part} APPEND PROPERTY COMPILE_OPTIONS -fno-semantic-interposition)
endforeach()

# The public headers: what worker.h and producer.h include, and nothing
# else (each compiles on its own from the install tree: library.install).
set(BATON_PUBLIC_HEADERS
    ${PROJECT_SOURCE_DIR}/worker/worker.h
    ${PROJECT_SOURCE_DIR}/producer/producer.h
    ${PROJECT_SOURCE_DIR}/common/error.h
    ${PROJECT_SOURCE_DIR}/common/metrics.h
    ${PROJECT_SOURCE_DIR}/common/task.h)

set(baton_objects $<TARGET_OBJECTS:baton_common> $<TARGET_OBJECTS:baton_worker>
                  $<TARGET_OBJECTS:baton_producer>)
add_library(baton_static STATIC ${baton_objects})
add_library(baton_shared SHARED ${baton_objects})
set_target_properties(baton_static PROPERTIES OUTPUT_NAME baton)
set_target_properties(baton_shared PROPERTIES OUTPUT_NAME baton
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
target_link_libraries(baton_shared PRIVATE
  PkgConfig::JANSSON PkgConfig::LIBPQ PkgConfig::HIREDIS PkgConfig::RDKAFKA PkgConfig::MICROHTTPD m
  Threads::Threads)

install(TARGETS baton_static baton_shared
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${BATON_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/baton)

# baton.pc finds the prefix from its own place (${pcfiledir}), so the tree
# can be installed anywhere (cmake --install --prefix DIR) and still be right.
file(RELATIVE_PATH BATON_PC_TO_PREFIX
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
# What a static link of libbaton.a adds (Libs.private): the dependencies'
# shared libraries, as found here. Not as Requires.private: then
# `pkg-config --static` would also ask for *their* private libraries (lz4,
# zstd, sasl2, pgcommon, ...), which a system has no static files for.
set(baton_pc_libs ${RDKAFKA_LDFLAGS} ${HIREDIS_LDFLAGS} ${LIBPQ_LDFLAGS} ${MICROHTTPD_LDFLAGS})
list(REMOVE_DUPLICATES baton_pc_libs)
list(JOIN baton_pc_libs " " BATON_PC_LIBS_PRIVATE)
configure_file(${CMAKE_CURRENT_LIST_DIR}/baton.pc.in ${PROJECT_BINARY_DIR}/baton.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/baton.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
