# etcd-txn-floor (bench/etcd_floor.cpp): one create-if-absent Txn per process through the etcd
# client, static like the installed executable. Included from lib/etcd/CMakeLists.txt.
add_executable(etcd-txn-floor ${CMAKE_CURRENT_LIST_DIR}/etcd_floor.cpp)
target_link_libraries(etcd-txn-floor PRIVATE ipoib_etcd)
if(IPOIB_STATIC)
  target_link_options(etcd-txn-floor PRIVATE -static -Wl,--gc-sections -Wl,--strip-debug)
endif()
