// The Prometheus text exposition (format 0.0.4) of the stats document
// (stats.hpp): one table names, for each part of the document, its metric
// family, type and help; `luad stats --format prometheus` and the metrics
// listener both write through it, so the two never differ.
#pragma once

#include <boost/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace luad::server {

/// The HTTP Content-Type of prometheus_text().
inline constexpr std::string_view prometheus_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

/// `stats` (a stats document) as Prometheus text: for each family a # HELP
/// and a # TYPE line, then its samples. Parts the document lacks (an older
/// daemon) are left out.
std::string prometheus_text(const boost::json::object& stats);

/// The paths ("store.commits") of the leaves of `stats` that no family
/// exposes and the table does not set aside: empty while the table and the
/// document agree (a test keeps it so).
std::vector<std::string> unexposed(const boost::json::object& stats);

}  // namespace luad::server
