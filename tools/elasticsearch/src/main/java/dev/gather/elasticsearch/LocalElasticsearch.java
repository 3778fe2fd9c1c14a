package dev.gather.elasticsearch;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.ClasspathPluginsNode;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts one real Elasticsearch 8.x node in this JVM, for local use and integration tests.
 *
 * <pre>
 * java -cp ... dev.gather.elasticsearch.LocalElasticsearch [--port N|0] [--home DIR] [--cluster-name NAME]
 *     [--node-name NAME] [--transport-port N] [--seed-hosts HOST:PORT,...] [--initial-master-nodes NAME,...]
 * </pre>
 *
 * Binds HTTP and transport to 127.0.0.1, no security (x-pack is not in these jars). Without --seed-hosts the
 * node is a single-node cluster; with it, the node discovers the others on those loopback transport ports and
 * the first start of the cluster elects a master among --initial-master-nodes (every node of a local cluster).
 * HTTP port: --port (default 9200; 0 picks a free one). Data in DIR/data, logs in DIR/logs, config in
 * DIR/config (DIR defaults to a new temp dir). When started, writes DIR/http.port and prints
 * "GATHER_ES_READY http://127.0.0.1:PORT" on stdout. SIGTERM closes the node cleanly.
 */
public final class LocalElasticsearch {

    public static void main(String[] args) throws Exception {
        int port = 9200;
        Path home = null;
        String clusterName = "gather-local";
        String nodeName = "gather-es";
        int transportPort = 0;
        String seedHosts = null;
        String initialMasterNodes = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(requireValue(args, ++i));
                case "--home" -> home = Path.of(requireValue(args, ++i));
                case "--cluster-name" -> clusterName = requireValue(args, ++i);
                case "--node-name" -> nodeName = requireValue(args, ++i);
                case "--transport-port" -> transportPort = Integer.parseInt(requireValue(args, ++i));
                case "--seed-hosts" -> seedHosts = requireValue(args, ++i);
                case "--initial-master-nodes" -> initialMasterNodes = requireValue(args, ++i);
                case "--help", "-h" -> {
                    System.out.println("usage: LocalElasticsearch [--port N|0] [--home DIR] [--cluster-name NAME] [--node-name NAME]"
                        + " [--transport-port N] [--seed-hosts HOST:PORT,...] [--initial-master-nodes NAME,...]");
                    return;
                }
                default -> {
                    System.err.println("unknown argument: " + args[i]);
                    System.exit(2);
                }
            }
        }
        if (home == null) {
            home = Files.createTempDirectory("gather-es-");
        }
        home = home.toAbsolutePath();
        if (port == 0) {
            port = freePort();
        }
        Path config = home.resolve("config");
        Path data = home.resolve("data");
        Path logs = home.resolve("logs");
        Files.createDirectories(config);
        Files.createDirectories(data);
        Files.createDirectories(logs);
        writeLoggingConfig(config.resolve("log4j2.properties"));
        Files.writeString(config.resolve("elasticsearch.yml"), "# settings are passed by tools/elasticsearch (LocalElasticsearch)\n");
        Files.deleteIfExists(home.resolve("http.port"));

        System.setProperty("es.set.netty.runtime.available.processors", "false");

        Settings.Builder builder = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", data.toString())
            .put("path.logs", logs.toString())
            .put("cluster.name", clusterName)
            .put("node.name", nodeName)
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", transportPort)
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("action.auto_create_index", true)
            .put("http.type", Netty4Plugin.NETTY_HTTP_TRANSPORT_NAME)
            .put("transport.type", Netty4Plugin.NETTY_TRANSPORT_NAME);
        if (seedHosts == null) {
            builder.put("discovery.type", "single-node");
        } else {
            builder.putList("discovery.seed_hosts", seedHosts.split(","));
            if (initialMasterNodes != null) {
                builder.putList("cluster.initial_master_nodes", initialMasterNodes.split(","));
            }
        }
        Settings settings = builder.build();

        LogConfigurator.registerErrorListener();
        final String finalNodeName = nodeName;
        Environment environment = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), config, () -> finalNodeName);
        LogConfigurator.setClusterName(clusterName);
        LogConfigurator.setNodeName(nodeName);
        LogConfigurator.configure(environment, true);

        Node node = new ClasspathPluginsNode(environment, List.of(Netty4Plugin.class, RootInfoPlugin.class));
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (node.awaitClose(30, TimeUnit.SECONDS) == false) {
                    System.err.println("elasticsearch node did not close within 30s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
                org.apache.logging.log4j.LogManager.shutdown();
            }
        }, "gather-es-shutdown"));
        node.start();
        Files.writeString(home.resolve("http.port"), Integer.toString(port) + "\n", StandardCharsets.UTF_8);
        System.out.println("GATHER_ES_READY http://127.0.0.1:" + port);
        System.out.flush();
        closed.await();
    }

    private static String requireValue(String[] args, int i) {
        if (i >= args.length) {
            System.err.println("missing value for " + args[i - 1]);
            System.exit(2);
        }
        return args[i];
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static void writeLoggingConfig(Path file) throws IOException {
        String props = String.join(
            "\n",
            "status = error",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%consoleException%n",
            "rootLogger.level = info",
            "rootLogger.appenderRef.console.ref = console",
            "logger.deprecation.name = org.elasticsearch.deprecation",
            "logger.deprecation.level = error",
            ""
        );
        Files.writeString(file, props, StandardCharsets.UTF_8);
    }
}
