//! `hystrix.stream` over real HTTP on loopback: every field the dashboard and Turbine read,
//! the keep-alive, the connection cap and the dashboard page.

use netflix_hystrix::collapser::{Collapser, CollapserConfig, Scope};
use netflix_hystrix::config::HystrixProperties;
use netflix_hystrix::registry::Registry;
use netflix_hystrix::stream::HystrixStream;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Layer, ServiceExt};

const COMMAND_FIELDS: &[(&str, &str)] = &[
    ("type", "string"),
    ("name", "string"),
    ("group", "string"),
    ("currentTime", "number"),
    ("isCircuitBreakerOpen", "bool"),
    ("errorPercentage", "number"),
    ("errorCount", "number"),
    ("requestCount", "number"),
    ("rollingCountBadRequests", "number"),
    ("rollingCountCollapsedRequests", "number"),
    ("rollingCountEmit", "number"),
    ("rollingCountExceptionsThrown", "number"),
    ("rollingCountFailure", "number"),
    ("rollingCountFallbackEmit", "number"),
    ("rollingCountFallbackFailure", "number"),
    ("rollingCountFallbackMissing", "number"),
    ("rollingCountFallbackRejection", "number"),
    ("rollingCountFallbackSuccess", "number"),
    ("rollingCountResponsesFromCache", "number"),
    ("rollingCountSemaphoreRejected", "number"),
    ("rollingCountShortCircuited", "number"),
    ("rollingCountSuccess", "number"),
    ("rollingCountThreadPoolRejected", "number"),
    ("rollingCountTimeout", "number"),
    ("currentConcurrentExecutionCount", "number"),
    ("rollingMaxConcurrentExecutionCount", "number"),
    ("latencyExecute_mean", "number"),
    ("latencyExecute", "object"),
    ("latencyTotal_mean", "number"),
    ("latencyTotal", "object"),
    (
        "propertyValue_circuitBreakerRequestVolumeThreshold",
        "number",
    ),
    (
        "propertyValue_circuitBreakerSleepWindowInMilliseconds",
        "number",
    ),
    (
        "propertyValue_circuitBreakerErrorThresholdPercentage",
        "number",
    ),
    ("propertyValue_circuitBreakerForceOpen", "bool"),
    ("propertyValue_circuitBreakerForceClosed", "bool"),
    ("propertyValue_circuitBreakerEnabled", "bool"),
    ("propertyValue_executionIsolationStrategy", "string"),
    (
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
        "number",
    ),
    ("propertyValue_executionTimeoutInMilliseconds", "number"),
    (
        "propertyValue_executionIsolationThreadInterruptOnTimeout",
        "bool",
    ),
    (
        "propertyValue_executionIsolationThreadPoolKeyOverride",
        "null",
    ),
    (
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
        "number",
    ),
    (
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
        "number",
    ),
    (
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
        "number",
    ),
    ("propertyValue_requestCacheEnabled", "bool"),
    ("propertyValue_requestLogEnabled", "bool"),
    ("reportingHosts", "number"),
    ("threadPool", "string"),
];

const POOL_FIELDS: &[&str] = &[
    "type",
    "name",
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];

const COLLAPSER_FIELDS: &[&str] = &[
    "type",
    "name",
    "currentTime",
    "rollingCountRequestsBatched",
    "rollingCountBatches",
    "rollingCountResponsesFromCache",
    "batchSize_mean",
    "batchSize",
    "propertyValue_requestCacheEnabled",
    "propertyValue_maxRequestsInBatch",
    "propertyValue_timerDelayInMilliseconds",
    "reportingHosts",
];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Sends a GET and returns the status line, headers and whatever body arrives before
/// `enough` holds (or the connection closes, or 5 s pass).
async fn get(addr: SocketAddr, path: &str, enough: impl Fn(&str) -> bool) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut chunk = [0u8; 8192];
        let n = match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            _ => break,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if enough(&String::from_utf8_lossy(&buf)) {
            break;
        }
    }
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

async fn setup() -> (
    Registry,
    netflix_hystrix::stream::StreamServer,
    HystrixStream,
) {
    let registry = Registry::new();
    registry
        .configure(
            &HystrixProperties::parse(
                "hystrix.command.Semaphore.execution.isolation.strategy=SEMAPHORE\n\
                 hystrix.command.Semaphore.execution.isolation.thread.timeoutInMilliseconds=250",
            )
            .unwrap(),
        )
        .unwrap();
    for name in ["Threaded", "Semaphore"] {
        let cmd = registry.command(name).group("Deps").build().unwrap();
        let svc = cmd
            .layer()
            .layer(tower::service_fn(|fail: bool| async move {
                if fail {
                    Err::<(), netflix_hystrix::BoxError>("boom".into())
                } else {
                    Ok(())
                }
            }));
        for i in 0..10 {
            let _ = svc.clone().oneshot(i % 3 == 0).await;
        }
    }
    let stream = HystrixStream::with_options(registry.clone(), Duration::from_millis(100), 2);
    let batch =
        tower::service_fn(|xs: Vec<u32>| async move { Ok::<_, netflix_hystrix::BoxError>(xs) });
    let mut cfg = CollapserConfig::default();
    cfg.scope = Scope::Global;
    let collapser = Collapser::new("Batcher", batch, cfg).unwrap();
    collapser.clone().oneshot(1).await.unwrap();
    stream.add_collapser(&collapser);
    let server = stream
        .clone()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (registry, server, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_field_under_its_exact_name() {
    let (_registry, server, _stream) = setup().await;
    // Wait for a bucket to complete so rolling counts are non-zero.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (head, body) = get(server.local_addr(), "/hystrix.stream", |b| {
        b.matches("HystrixCollapser").count() >= 1 && b.contains("ping: ")
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head_lc = head.to_lowercase();
    assert!(
        head_lc.contains("content-type: text/event-stream;charset=utf-8"),
        "{head}"
    );
    assert!(head_lc.contains("cache-control: no-cache, no-store, max-age=0, must-revalidate"));
    assert!(head_lc.contains("pragma: no-cache"));
    assert!(body.contains("ping: \n\n"), "keep-alive missing");

    let objects: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|j| serde_json::from_str(j).expect("one JSON object per data line"))
        .collect();
    let commands: Vec<_> = objects
        .iter()
        .filter(|o| o["type"] == "HystrixCommand")
        .collect();
    assert_eq!(commands.len(), 2, "{body}");
    for c in &commands {
        for (field, ty) in COMMAND_FIELDS {
            let v = c
                .get(*field)
                .unwrap_or_else(|| panic!("missing {field} in {c}"));
            assert_eq!(kind(v), *ty, "{field} in {c}");
        }
        let keys: Vec<_> = c["latencyExecute"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for k in ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"] {
            assert!(keys.contains(&k.to_string()), "latencyExecute lacks {k}");
            assert!(c["latencyTotal"][k].is_u64());
        }
        assert_eq!(c["reportingHosts"], 1);
        assert_eq!(c["group"], "Deps");
        assert_eq!(c["threadPool"], "Deps");
        // 10 calls, 4 failures: the health counts are real.
        assert_eq!(c["requestCount"], 10, "{c}");
        assert_eq!(c["errorCount"], 4);
        assert_eq!(c["errorPercentage"], 40);
        assert_eq!(c["rollingCountSuccess"], 6);
        assert_eq!(c["rollingCountFailure"], 4);
    }
    let sem = commands.iter().find(|c| c["name"] == "Semaphore").unwrap();
    assert_eq!(sem["propertyValue_executionIsolationStrategy"], "SEMAPHORE");
    assert_eq!(sem["propertyValue_executionTimeoutInMilliseconds"], 250);
    let thr = commands.iter().find(|c| c["name"] == "Threaded").unwrap();
    assert_eq!(thr["propertyValue_executionIsolationStrategy"], "THREAD");
    assert_eq!(thr["propertyValue_executionTimeoutInMilliseconds"], 1000);

    let pools: Vec<_> = objects
        .iter()
        .filter(|o| o["type"] == "HystrixThreadPool")
        .collect();
    assert_eq!(pools.len(), 1, "one key, the real pool wins: {body}");
    for f in POOL_FIELDS {
        assert!(pools[0].get(*f).is_some(), "pool lacks {f}");
    }
    assert_eq!(pools[0]["currentCompletedTaskCount"], 10);
    assert_eq!(pools[0]["currentCorePoolSize"], 10);

    let collapsers: Vec<_> = objects
        .iter()
        .filter(|o| o["type"] == "HystrixCollapser")
        .collect();
    assert!(!collapsers.is_empty());
    for f in COLLAPSER_FIELDS {
        assert!(collapsers[0].get(*f).is_some(), "collapser lacks {f}");
    }
    assert!(collapsers[0]["batchSize"].get("0").is_none());
    assert!(collapsers[0]["batchSize"]["99.5"].is_u64());

    // Order: commands, then pools, then collapsers.
    let order: Vec<_> = objects
        .iter()
        .take(4)
        .map(|o| o["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        [
            "HystrixCommand",
            "HystrixCommand",
            "HystrixThreadPool",
            "HystrixCollapser"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503() {
    let (_registry, server, stream) = setup().await;
    let addr = server.local_addr();
    let open = |addr| async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /hystrix.stream HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut b = [0u8; 64];
        let n = tcp.read(&mut b).await.unwrap();
        assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 200"));
        tcp
    };
    let a = open(addr).await;
    let b = open(addr).await;
    assert_eq!(stream.active_streams(), 2);
    let (head, body) = get(addr, "/hystrix.stream", |b| b.contains("reached")).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(body.contains("MaxConcurrentConnections reached: 2"));
    drop((a, b));
    // The server notices the closed streams at its next write.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stream.active_streams() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream.active_streams(), 0);
    let (head, _) = get(addr, "/hystrix.stream", |b| b.contains("data: ")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_page_and_errors() {
    let (_registry, server, _stream) = setup().await;
    let addr = server.local_addr();
    let (head, body) = get(addr, "/", |b| b.contains("</html>")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("text/html"));
    assert!(body.contains("new EventSource(\"hystrix.stream\")"));
    let (head, _) = get(addr, "/nope", |b| b.contains("not found")).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
