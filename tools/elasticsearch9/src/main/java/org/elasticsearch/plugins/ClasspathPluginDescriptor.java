package org.elasticsearch.plugins;

import org.elasticsearch.Build;

import java.util.List;

/**
 * Elasticsearch 9.x version of tools/elasticsearch's ClasspathPluginDescriptor: 9.x added the
 * {@code DeploymentTarget} argument and needs Java 21.
 */
final class ClasspathPluginDescriptor {

    private ClasspathPluginDescriptor() {}

    static PluginDescriptor of(Class<? extends Plugin> pluginClass) {
        return new PluginDescriptor(
            pluginClass.getName(),
            "classpath plugin " + pluginClass.getName(),
            "NA",
            Build.current().version(),
            "21",
            pluginClass.getName(),
            null,
            List.of(),
            false,
            false,
            false,
            false,
            PluginDescriptor.DeploymentTarget.ALL
        );
    }
}
