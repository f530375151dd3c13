// tests/doctor/doctor_test_support.h — looking up a row of a doctor run, and the rule every row
// keeps (a fix exactly with a FAIL or WARN, a finding always), for the doctor's tests.
#pragma once

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "ipoib/doctor/doctor.h"

namespace doctor_test {

inline const ipoib::doctor::CheckResult& find(
    const std::vector<ipoib::doctor::CheckResult>& results, const std::string& id) {
  for (const ipoib::doctor::CheckResult& r : results) {
    if (r.id == id) {
      return r;
    }
  }
  FAIL("no check with id " << id);
  throw std::logic_error("unreachable");
}

// Every problem comes with its fix; nothing else carries one.
inline void check_rows(const std::vector<ipoib::doctor::CheckResult>& results) {
  using ipoib::doctor::CheckStatus;
  for (const ipoib::doctor::CheckResult& r : results) {
    INFO(r.id);
    const bool problem = r.status == CheckStatus::kFail || r.status == CheckStatus::kWarn;
    CHECK(r.fix.empty() == !problem);
    CHECK_FALSE(r.finding.empty());
  }
}

}  // namespace doctor_test
